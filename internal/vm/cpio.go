package vm

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The kernel unpacks an initramfs in the "newc" cpio format
// (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte
// ASCII header of hex fields, the NUL-terminated name, the data, each padded
// to 4 bytes, closed by an entry named "TRAILER!!!".

// cpioEntry is one archive member; for symlinks data is the target.
type cpioEntry struct {
	name         string
	mode         uint32 // file type bits and permissions, as in st_mode
	rdevMajor    uint32
	rdevMinor    uint32
	data         io.Reader
	size         int64
	uid, gid, nl uint32
}

type cpioWriter struct {
	w     *bufio.Writer
	ino   uint32
	total int64
}

func (c *cpioWriter) write(e cpioEntry) error {
	c.ino++
	nlink := e.nl
	if nlink == 0 {
		nlink = 1
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, e.mode, e.uid, e.gid, nlink, 0, e.size, 0, 0, e.rdevMajor, e.rdevMinor, len(e.name)+1, 0)
	if _, err := c.w.WriteString(hdr + e.name + "\x00"); err != nil {
		return err
	}
	c.total += int64(len(hdr) + len(e.name) + 1)
	if err := c.pad(); err != nil {
		return err
	}
	if e.data != nil {
		n, err := io.Copy(c.w, e.data)
		if err != nil {
			return err
		}
		if n != e.size {
			return fmt.Errorf("%s: wrote %d bytes, header says %d", e.name, n, e.size)
		}
		c.total += n
	}
	return c.pad()
}

func (c *cpioWriter) pad() error {
	for c.total%4 != 0 {
		if err := c.w.WriteByte(0); err != nil {
			return err
		}
		c.total++
	}
	return nil
}

// writeCPIO archives dir itself as "." (mode 0755), every file, directory
// and symlink under it (owned by root in the archive, whatever they are on
// the host), then the extra device nodes, in newc format.
func writeCPIO(w io.Writer, dir string, devices []cpioEntry) error {
	c := &cpioWriter{w: bufio.NewWriter(w)}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == "." {
			// The root's own mode: the kernel's rootfs is a tmpfs whose
			// root is 1777 unless the archive says otherwise, and sshd's
			// StrictModes refuses keys under a world-writable /.
			return c.write(cpioEntry{name: ".", mode: syscall.S_IFDIR | 0o755, nl: 2})
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := cpioEntry{name: rel, mode: uint32(fi.Mode().Perm())}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			e.mode = st.Mode // keeps setuid, setgid and sticky bits
		}
		switch {
		case fi.IsDir():
			e.mode = e.mode&0o7777 | syscall.S_IFDIR
			e.nl = 2
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			e.mode = 0o777 | syscall.S_IFLNK
			e.data, e.size = strings.NewReader(target), int64(len(target))
		case fi.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			e.mode = e.mode&0o7777 | syscall.S_IFREG
			e.data, e.size = f, fi.Size()
		default:
			return fmt.Errorf("%s: unsupported file type %v", path, fi.Mode().Type())
		}
		return c.write(e)
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	for _, d := range devices {
		if err := c.write(d); err != nil {
			return fmt.Errorf("archive device %s: %w", d.name, err)
		}
	}
	if err := c.write(cpioEntry{name: "TRAILER!!!"}); err != nil {
		return fmt.Errorf("archive trailer: %w", err)
	}
	return c.w.Flush()
}
