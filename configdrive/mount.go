package configdrive

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mounter is the one pair of syscalls the kernel fallback needs; tests
// replace it.
type mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string) error
}

type sysMounter struct{}

func (sysMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

func (sysMounter) Unmount(target string) error { return unix.Unmount(target, 0) }

// kernelModule provides each filesystem type the fallback mounts.
var kernelModule = map[string]string{FSISO9660: "isofs", FSVFAT: "vfat"}

// mountFlags: read-only, and nothing on the drive may act as a device, a
// set-uid program or an executable.
const mountFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// ReadMounted reads a config drive through the kernel: it mounts device
// read-only as fstype ("iso9660" or "vfat", as Probe reports) on a private
// directory under o.RunDir, reads the files, unmounts and removes the
// directory, whatever happened in between. It needs the isofs or vfat
// module; ReadFiles calls it when the userspace reader fails on a block
// device.
func ReadMounted(ctx context.Context, device, fstype string, o ReadOptions) (Files, error) {
	return readMounted(ctx, sysMounter{}, device, fstype, o)
}

func readMounted(ctx context.Context, m mounter, device, fstype string, o ReadOptions) (files Files, err error) {
	if err := ctx.Err(); err != nil {
		return Files{}, fmt.Errorf("mount %s: %w", device, err)
	}
	if fstype != FSISO9660 && fstype != FSVFAT {
		return Files{}, fmt.Errorf("mount %s: filesystem type %q: %w", device, fstype, ErrUnknownFS)
	}
	runDir := o.runDir()
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return Files{}, fmt.Errorf("create %s: %w", runDir, err)
	}
	dir, err := os.MkdirTemp(runDir, "drive-")
	if err != nil {
		return Files{}, fmt.Errorf("create mount point in %s: %w", runDir, err)
	}
	if err := m.Mount(device, dir, fstype, mountFlags, ""); err != nil {
		os.Remove(dir)
		hint := ""
		if errors.Is(err, unix.ENODEV) {
			// ENODEV: the kernel knows no such filesystem type.
			hint = fmt.Sprintf(" (is the %s module loaded?)", kernelModule[fstype])
		}
		return Files{}, fmt.Errorf("mount %s on %s (%s, read-only): %w%s", device, dir, fstype, err, hint)
	}
	defer func() {
		if uerr := m.Unmount(dir); uerr != nil {
			// Leave the directory: removing a mount point fails anyway,
			// and the error says where it is.
			err = errors.Join(err, fmt.Errorf("unmount %s: %w", dir, uerr))
			return
		}
		if rerr := os.Remove(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", dir, rerr))
		}
	}()
	files, err = readTree(os.DirFS(dir))
	if err != nil {
		return Files{}, fmt.Errorf("read %s mounted on %s: %w", device, dir, err)
	}
	files.Source, files.FSType = device, fstype
	return files, nil
}
