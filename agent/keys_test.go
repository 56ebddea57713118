package agent

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/internal/atomicfile"
)

// doDrive is a DigitalOcean config drive's tree (see testdata/README.md).
const doDrive = "testdata/do-drive"

// parseDrive parses the files of a drive tree, as configdrive would after
// reading them off an image.
func parseDrive(t *testing.T, dir string) *configdrive.Metadata {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return b
	}
	md, err := configdrive.Parse(configdrive.Files{
		Source:       dir,
		FSType:       "iso9660",
		Version:      "latest",
		MetaData:     read("openstack/latest/meta_data.json"),
		NetworkData:  read("openstack/latest/network_data.json"),
		UserData:     read("openstack/latest/user_data"),
		DigitalOcean: read("digitalocean_meta_data.json"),
	})
	if err != nil {
		t.Fatalf("Parse(%s): %v", dir, err)
	}
	return md
}

// wantKeysFile is what do-drive's keys make: every valid key once, in
// configdrive's order, one per line.
func wantKeysFile(md *configdrive.Metadata) string {
	var b strings.Builder
	for _, k := range md.PublicKeys {
		b.WriteString(k.Line + "\n")
	}
	return b.String()
}

func writeFile(t *testing.T, path, content string, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInstallKeysFreshAndRerun(t *testing.T) {
	md := parseDrive(t, doDrive)
	if len(md.PublicKeys) != 2 {
		t.Fatalf("do-drive has %d valid keys, want 2 (alice's twice, bob's; the truncated and dotty keys never)", len(md.PublicKeys))
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\ncore:x:1000:1001:Core:/home/core:/bin/sh\n", 0o644)

	res, err := InstallKeys(md, KeysOptions{Root: root, User: "core"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "etc/ssh/authorized_keys.d/core")
	want := KeysResult{Path: path, Count: 2, Changed: true, Warnings: []string{`key "2" skipped: ` + md.SkippedKeys[0].Reason}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("InstallKeys result (-want +got):\n%s", diff)
	}
	if got := readFile(t, path); got != wantKeysFile(md) {
		t.Errorf("key file = %q, want %q", got, wantKeysFile(md))
	}
	checkMode(t, path, 0o600, 1000, 1001)
	checkMode(t, filepath.Dir(path), fs.ModeDir|0o755, 0, 0)
	before, _ := os.Stat(path)

	res, err = InstallKeys(md, KeysOptions{Root: root, User: "core"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || res.Count != 2 {
		t.Errorf("rerun: Changed=%t Count=%d, want unchanged with 2 keys", res.Changed, res.Count)
	}
	if got := res.Summary(); got != "2 keys installed in "+path+" (unchanged)" {
		t.Errorf("rerun summary = %q", got)
	}
	after, _ := os.Stat(path)
	if !after.ModTime().Equal(before.ModTime()) || os.SameFile(before, after) == false {
		t.Errorf("rerun rewrote the file (mtime %v -> %v)", before.ModTime(), after.ModTime())
	}
}

func checkMode(t *testing.T, path string, mode fs.FileMode, uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", path, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}

func TestInstallKeysReplacesWholeFile(t *testing.T) {
	md := parseDrive(t, doDrive)
	root := t.TempDir()
	path := filepath.Join(root, KeysDir, "root")
	// A key the drive no longer lists goes: the drive is the truth.
	writeFile(t, path, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL2Boea9vO7Yzd5ayBTL8WsSL4Jnqp+vYoTNRKIQMHB7 old\n", 0o644)
	res, err := InstallKeys(md, KeysOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || readFile(t, path) != wantKeysFile(md) {
		t.Errorf("Changed=%t, file %q; want the drive's keys", res.Changed, readFile(t, path))
	}
	// No passwd under root: root is uid 0 all the same.
	checkMode(t, path, 0o600, 0, 0)
}

func TestInstallKeysRefusesSymlinks(t *testing.T) {
	md := parseDrive(t, doDrive)
	const old = "ssh-ed25519 AAAA... keep me\n"
	for _, tt := range []struct {
		name string
		// link makes root's key file or directory a link to target and
		// returns the file whose content must not change.
		link func(t *testing.T, root, target string) string
	}{
		{"file", func(t *testing.T, root, target string) string {
			victim := filepath.Join(target, "victim")
			writeFile(t, victim, old, 0o600)
			os.MkdirAll(filepath.Join(root, KeysDir), 0o755)
			if err := os.Symlink(victim, filepath.Join(root, KeysDir, "root")); err != nil {
				t.Fatal(err)
			}
			return victim
		}},
		{"directory", func(t *testing.T, root, target string) string {
			victim := filepath.Join(target, "root")
			writeFile(t, victim, old, 0o600)
			os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755)
			if err := os.Symlink(target, filepath.Join(root, KeysDir)); err != nil {
				t.Fatal(err)
			}
			return victim
		}},
		{"dangling directory", func(t *testing.T, root, target string) string {
			os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755)
			if err := os.Symlink(filepath.Join(target, "nowhere"), filepath.Join(root, KeysDir)); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root, target := t.TempDir(), t.TempDir()
			victim := tt.link(t, root, target)
			_, err := InstallKeys(md, KeysOptions{Root: root})
			if !errors.Is(err, atomicfile.ErrSymlink) {
				t.Fatalf("InstallKeys = %v, want ErrSymlink", err)
			}
			if !strings.Contains(err.Error(), filepath.Join(root, KeysDir)) {
				t.Errorf("error %q does not name the link", err)
			}
			if victim != "" && readFile(t, victim) != old {
				t.Errorf("link target changed to %q", readFile(t, victim))
			}
			entries, _ := os.ReadDir(target)
			if victim == "" && len(entries) != 0 {
				t.Errorf("dangling link's directory got %d entries", len(entries))
			}
		})
	}
}

func TestInstallKeysNoValidKeyKeepsFile(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, KeysDir, "root")
	const old = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGP8rdwQ2SZ3uRSMTOOEj28jsmm4zRRMWgUIzTSVc8Cy carol@desk\n"
	writeFile(t, path, old, 0o600)
	// The seed's own meta_data.json: its only key was cut short by hand.
	data, err := os.ReadFile("../../shared/fixtures/not-os/digitalocean-configdrive-openstack-latest-meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	md, err := configdrive.Parse(configdrive.Files{MetaData: data})
	if err != nil {
		t.Fatal(err)
	}
	res, err := InstallKeys(md, KeysOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 0 || res.Changed || len(res.Warnings) != 1 {
		t.Errorf("result %+v, want no key, unchanged, one skipped-key warning", res)
	}
	if got, want := res.Summary(), "no valid key on the drive, "+path+" left untouched"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if got := readFile(t, path); got != old {
		t.Errorf("key file = %q, want it untouched", got)
	}
}

// TestInstallKeysOneLineEach: a key value holding a line break is never
// written (it could smuggle in options or keys); the others are.
func TestInstallKeysOneLineEach(t *testing.T) {
	good := parseDrive(t, doDrive).PublicKeys[0]
	md := &configdrive.Metadata{PublicKeys: []configdrive.PublicKey{
		good,
		{Name: "evil", Line: good.Line + "\ncommand=\"/bin/sh\" " + good.Line},
		{Name: "cr", Line: good.Line + "\r"},
		{Name: "blank", Line: " "},
	}}
	root := t.TempDir()
	res, err := InstallKeys(md, KeysOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	want := KeysResult{Path: filepath.Join(root, KeysDir, "root"), Count: 1, Changed: true, Warnings: []string{
		`key "evil" skipped: not a single line`, `key "cr" skipped: not a single line`, `key "blank" skipped: not a single line`}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("InstallKeys (-want +got):\n%s", diff)
	}
	if got := readFile(t, res.Path); got != good.Line+"\n" {
		t.Errorf("key file = %q, want only %q", got, good.Line)
	}
}

func TestInstallKeysBadUser(t *testing.T) {
	md := parseDrive(t, doDrive)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nodd:x:notanumber:0::/:/bin/sh\n", 0o644)
	for _, tt := range []struct{ user, wantErr string }{
		{"nobody", `look up user "nobody" in ` + filepath.Join(root, "etc/passwd") + ": no such user"},
		{"odd", filepath.Join(root, "etc/passwd") + ` line 2: user "odd": strconv.ParseUint: parsing "notanumber": invalid syntax`},
		{"../../etc/shadow", `user "../../etc/shadow": not a valid login name`},
	} {
		_, err := InstallKeys(md, KeysOptions{Root: root, User: tt.user})
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("InstallKeys(user %q) = %v, want %q", tt.user, err, tt.wantErr)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/ssh")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed lookup created etc/ssh: %v", err)
	}
}

// TestInstallKeysReadOnlyRoot: a root mounted read-only gives an error
// naming the file and the old key file is still there, whole.
func TestInstallKeysReadOnlyRoot(t *testing.T) {
	if !inPrivateNamespaces(t, unix.CLONE_NEWNS) {
		return
	}
	md := parseDrive(t, doDrive)
	root := t.TempDir()
	path := filepath.Join(root, KeysDir, "root")
	const old = "ssh-ed25519 AAAA old\n"
	writeFile(t, path, old, 0o600)
	mustMount(t, root, root, "", unix.MS_BIND, "")
	mustMount(t, "", root, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")

	_, err := InstallKeys(md, KeysOptions{Root: root})
	if !errors.Is(err, unix.EROFS) || !strings.Contains(err.Error(), filepath.Join(root, KeysDir)) {
		t.Fatalf("InstallKeys on a read-only root = %v, want EROFS naming %s", err, filepath.Join(root, KeysDir))
	}
	if got := readFile(t, path); got != old {
		t.Errorf("key file = %q, want %q", got, old)
	}
}

// TestInstallKeysFullDisk: on a full filesystem the write fails, the old
// file survives intact and no temporary file is left behind.
func TestInstallKeysFullDisk(t *testing.T) {
	if !inPrivateNamespaces(t, unix.CLONE_NEWNS) {
		return
	}
	md := parseDrive(t, doDrive)
	root := t.TempDir()
	mustMount(t, "tmpfs", root, "tmpfs", 0, "size=64k")
	path := filepath.Join(root, KeysDir, "root")
	const old = "ssh-ed25519 AAAA old\n"
	writeFile(t, path, old, 0o600)
	filler, err := os.Create(filepath.Join(root, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(bytes.Repeat([]byte{0}, 4096)); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	filler.Close()

	_, err = InstallKeys(md, KeysOptions{Root: root})
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("InstallKeys on a full disk = %v, want ENOSPC", err)
	}
	if got := readFile(t, path); got != old {
		t.Errorf("key file = %q, want %q", got, old)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries after the failure, want only the key file", filepath.Dir(path), len(entries))
	}
}

func mustMount(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		t.Fatalf("mount %s on %s: %v", source, target, err)
	}
	if flags&unix.MS_REMOUNT == 0 {
		t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	}
}
