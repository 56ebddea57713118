// Package atomicfile replaces files whole: a reader sees either the old
// content or the new, never a mix, and a crash or a full disk never leaves a
// truncated file behind.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrSymlink is returned when the target or its directory is a symbolic
// link. Writing through a link would change a file the caller did not name
// (for example /etc/resolv.conf pointing into systemd-resolved's state).
var ErrSymlink = errors.New("refusing to write through a symbolic link")

// Options says how the file is to be owned. A negative UID or GID leaves the
// owner as the process creates it.
type Options struct {
	Perm fs.FileMode
	UID  int
	GID  int
	// DirPerm, when not zero, creates the parent directory (and its parents)
	// with this mode when missing.
	DirPerm fs.FileMode
}

// Write replaces path with data. It reports whether anything changed: when
// the file already holds exactly data, with the same mode and owner, nothing
// is written at all, so a rerun leaves the file (and its mtime) untouched.
//
// The sequence is the classic one: a temporary file in the same directory,
// write, fsync, chmod/chown, rename over the target, fsync the directory.
// Neither path nor its directory may be a symbolic link.
func Write(path string, data []byte, o Options) (changed bool, err error) {
	dir := filepath.Dir(path)
	if o.DirPerm != 0 {
		if err := os.MkdirAll(dir, o.DirPerm); err != nil {
			return false, fmt.Errorf("create directory %s: %w", dir, err)
		}
	}
	if fi, err := os.Lstat(dir); err != nil {
		return false, fmt.Errorf("stat %s: %w", dir, err)
	} else if fi.Mode()&fs.ModeSymlink != 0 {
		return false, fmt.Errorf("write %s: directory %s: %w", path, dir, ErrSymlink)
	}
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("stat %s: %w", path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return false, fmt.Errorf("write %s: %w", path, ErrSymlink)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("write %s: not a regular file", path)
	default:
		if same(path, fi, data, o) {
			return false, nil
		}
	}

	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return false, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(o.Perm); err != nil {
		return false, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if o.UID >= 0 || o.GID >= 0 {
		if err := f.Chown(o.UID, o.GID); err != nil {
			return false, fmt.Errorf("chown %s: %w", tmp, err)
		}
	}
	// fsync before rename: otherwise a crash can leave the new name
	// pointing at an empty inode (ext4 with delalloc).
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return true, err
	}
	return true, nil
}

func same(path string, fi fs.FileInfo, data []byte, o Options) bool {
	if fi.Mode().Perm() != o.Perm.Perm() || fi.Size() != int64(len(data)) {
		return false
	}
	if !ownedBy(fi, o.UID, o.GID) {
		return false
	}
	old, err := os.ReadFile(path)
	return err == nil && bytes.Equal(old, data)
}

// SyncDir fsyncs a directory, making a rename in it durable. Writers that
// cannot hand Write their data as one slice (a disk image built in place)
// use it after their own rename.
func SyncDir(dir string) error { return syncDir(dir) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
