package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/internal/atomicfile"
)

// KeysDir is where sshd finds the keys on not-os: its sshd_config has
// "AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u".
const KeysDir = "/etc/ssh/authorized_keys.d"

// KeysOptions says where the keys go.
type KeysOptions struct {
	Root string // the system's root directory; "" means "/"
	User string // the login the keys are for; "" means "root"
}

// KeysResult reports an InstallKeys call.
type KeysResult struct {
	Path     string // the authorized_keys file, Root included
	Count    int    // keys in the file; 0: the drive had none, nothing was written
	Changed  bool   // false when the file already held exactly these keys
	Warnings []string
}

// InstallKeys writes md's public keys to <Root>/etc/ssh/authorized_keys.d/<User>,
// one per line in md's order, replacing the file whole and atomically.
// The file is 0600 and owned by the user (looked up in <Root>/etc/passwd),
// its directory 0755. When md holds no valid key the existing file is left
// as it is, so a drive with broken keys never locks anybody out.
func InstallKeys(md *configdrive.Metadata, o KeysOptions) (KeysResult, error) {
	root, user := o.Root, o.User
	if root == "" {
		root = "/"
	}
	if user == "" {
		user = "root"
	}
	// The user name becomes a file name: it must not climb out of KeysDir.
	if !validUserName(user) {
		return KeysResult{}, fmt.Errorf("user %q: not a valid login name", user)
	}
	dir := filepath.Join(root, KeysDir)
	res := KeysResult{Path: filepath.Join(dir, user)}
	for _, k := range md.SkippedKeys {
		res.Warnings = append(res.Warnings, fmt.Sprintf("key %q skipped: %s", k.Name, k.Reason))
	}
	var b bytes.Buffer
	n := 0
	for _, k := range md.PublicKeys {
		// One key per line: a line break inside a key would let the
		// metadata add lines of its own (options, other keys).
		if strings.ContainsAny(k.Line, "\r\n") || strings.TrimSpace(k.Line) == "" {
			res.Warnings = append(res.Warnings, fmt.Sprintf("key %q skipped: not a single line", k.Name))
			continue
		}
		b.WriteString(k.Line)
		b.WriteByte('\n')
		n++
	}
	if n == 0 {
		return res, nil
	}

	passwd := filepath.Join(root, "etc/passwd")
	uid, gid, err := lookupUser(passwd, user)
	if err != nil {
		return res, err
	}
	if err := ensureKeysDir(dir); err != nil {
		return res, err
	}
	res.Changed, err = atomicfile.Write(res.Path, b.Bytes(), atomicfile.Options{Perm: 0o600, UID: uid, GID: gid})
	if err != nil {
		return res, err
	}
	res.Count = n
	return res, nil
}

// Summary is the result as the keys step's log line says it:
// "2 keys installed in /etc/ssh/authorized_keys.d/root (changed)".
func (r KeysResult) Summary() string {
	if r.Count == 0 {
		return "no valid key on the drive, " + r.Path + " left untouched"
	}
	return fmt.Sprintf("%s installed in %s (%s)", countKeys(r.Count), r.Path, changedWord(r.Changed))
}

// countKeys says "1 key" or "N keys".
func countKeys(n int) string {
	if n == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys", n)
}

func changedWord(changed bool) string {
	if changed {
		return "changed"
	}
	return "unchanged"
}

// ensureKeysDir creates dir with mode 0755 when it is missing. A symbolic
// link in its place is refused here already, so that MkdirAll never
// follows one and the link's target is never touched.
func ensureKeysDir(dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("directory %s: %w", dir, atomicfile.ErrSymlink)
	case err == nil && !fi.IsDir():
		return fmt.Errorf("directory %s: not a directory", dir)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	// MkdirAll's mode passes through the umask; sshd's StrictModes wants
	// no group or other write bit, and everybody must be able to search it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// lookupUser finds user's uid and gid in a passwd file. os/user cannot be
// pointed at another root (and needs cgo for NSS), and a stage-1 system has
// only the file anyway. root is uid 0 even when the file is missing.
func lookupUser(passwd, user string) (uid, gid int, err error) {
	data, err := os.ReadFile(passwd)
	if errors.Is(err, fs.ErrNotExist) && user == "root" {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("look up user %q: %w", user, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		// name:password:uid:gid:gecos:home:shell (passwd(5))
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || f[0] != user {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("%s line %d: user %q: %w", passwd, n, user, err)
		}
		return int(uid), int(gid), nil
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", passwd, err)
	}
	if user == "root" {
		return 0, 0, nil
	}
	return 0, 0, fmt.Errorf("look up user %q in %s: no such user", user, passwd)
}

// validUserName accepts the portable login names of useradd(8) and POSIX:
// letters, digits, '.', '_', '-', not starting with '-' or '.'.
func validUserName(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
