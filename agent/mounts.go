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

	"golang.org/x/sys/unix"
)

// Mount is one line of /proc/self/mountinfo, the fields the agent uses.
type Mount struct {
	Point  string // mount point, unescaped
	FSType string
	Source string
}

// ParseMountinfo reads /proc/self/mountinfo (proc(5)): "36 35 98:0
// /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
// Optional fields run until the "-" separator. Octal escapes (\040 for a
// space) in paths are undone.
func ParseMountinfo(data []byte) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, line)
		}
		m := Mount{Point: unescapeMountPath(f[4]), FSType: f[sep+1]}
		if sep+2 < len(f) {
			m.Source = unescapeMountPath(f[sep+2])
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return mounts, nil
}

// unescapeMountPath undoes the kernel's mangle() (fs/proc_namespace.c):
// space, tab, newline and backslash are written as \ooo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// APIMount is a filesystem that stage 1 needs mounted.
type APIMount struct {
	Point  string
	FSType string
	Flags  uintptr
	Data   string
}

// APIMounts are the filesystems stage 1 makes sure of, in mounting order:
// /proc first, since /proc/self/mountinfo lives there.
var APIMounts = []APIMount{
	{Point: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Point: "/sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Point: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	{Point: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
}

// MissingMounts returns the APIMounts that have nothing mounted on their
// mount point. Whatever is there already is left alone, whatever its type:
// a second tmpfs over a live /run would hide everything under it (sshd's
// privilege-separation directory included).
// Mount points are looked up under root ("/" on a real system).
func MissingMounts(mounted []Mount, root string) []APIMount {
	have := make(map[string]bool, len(mounted))
	for _, m := range mounted {
		have[m.Point] = true
	}
	var missing []APIMount
	for _, m := range APIMounts {
		if !have[filepath.Join(root, m.Point)] {
			missing = append(missing, m)
		}
	}
	return missing
}

// Mounter makes the mount system call; tests substitute a fake.
type Mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
}

// SystemMounter mounts with mount(2).
type SystemMounter struct{}

// Mount calls mount(2).
func (SystemMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

// ensureMounts mounts the APIMounts missing from mountinfoPath, under root. When
// mountinfoPath cannot be read because /proc is not mounted, /proc is
// mounted first and the file read again. It returns the mount points it
// mounted.
func ensureMounts(m Mounter, root, mountinfoPath string) ([]string, error) {
	data, err := os.ReadFile(mountinfoPath)
	var done []string
	if errors.Is(err, fs.ErrNotExist) {
		proc := APIMounts[0]
		if err := mountOne(m, root, proc); err != nil {
			return nil, err
		}
		done = append(done, proc.Point)
		data, err = os.ReadFile(mountinfoPath)
	}
	if err != nil {
		return done, fmt.Errorf("read %s: %w", mountinfoPath, err)
	}
	mounted, err := ParseMountinfo(data)
	if err != nil {
		return done, fmt.Errorf("%s: %w", mountinfoPath, err)
	}
	var errs []error
	for _, want := range MissingMounts(mounted, root) {
		if err := mountOne(m, root, want); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, want.Point)
	}
	return done, errors.Join(errs...)
}

func mountOne(m Mounter, root string, want APIMount) error {
	target := filepath.Join(root, want.Point)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	if err := m.Mount(want.FSType, target, want.FSType, want.Flags, want.Data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", want.FSType, target, err)
	}
	return nil
}
