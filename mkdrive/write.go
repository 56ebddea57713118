package mkdrive

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/notos-agent/notos-agent/internal/atomicfile"
)

// Format is the filesystem of a drive image.
type Format string

const (
	// ISO is ISO9660 with Rock Ridge and Joliet, labelled config-2: what
	// Nova (genisoimage -J -r -V config-2) and DigitalOcean write.
	ISO Format = "iso"
	// VFAT is FAT32 labelled CONFIG-2, as some clouds (IBM Classic) use.
	VFAT Format = "vfat"
)

// Labels of the drives Write makes.
const (
	ISOLabel  = "config-2"
	VFATLabel = "CONFIG-2"
)

// Write makes an image of the given format holding files (paths relative
// to the root, slash-separated, as Files returns them) and puts it at path
// atomically: the image is built in a temporary file next to path, synced,
// then renamed over it, so path is never a half-written drive. (The
// pattern of internal/atomicfile, which wants the content as one slice: an
// image is built in place by go-diskfs.)
func Write(path string, format Format, files map[string][]byte) (err error) {
	var build func(*os.File, map[string][]byte) error
	switch format {
	case ISO:
		build = writeISO
	case VFAT:
		build = writeVFAT
	default:
		return fmt.Errorf("write %s: unknown format %q (want %q or %q)", path, format, ISO, VFAT)
	}
	// Renaming over a device node would replace the node, not write the
	// device: an image goes to a file, and dd puts it on a disk.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("write %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := build(f, files); err != nil {
		return fmt.Errorf("build %s image %s: %w", format, path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return atomicfile.SyncDir(dir)
}

// populate creates the directories and files of files in fsys, in sorted
// order so that two runs lay the image out the same way.
func populate(fsys filesystem.FileSystem, files map[string][]byte) error {
	paths := make([]string, 0, len(files))
	dirs := map[string]bool{}
	for p := range files {
		paths = append(paths, p)
		for d := path.Dir(p); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList) // a parent sorts before its children
	sort.Strings(paths)
	for _, d := range dirList {
		if err := fsys.Mkdir("/" + d); err != nil {
			return fmt.Errorf("mkdir /%s: %w", d, err)
		}
	}
	for _, p := range paths {
		f, err := fsys.OpenFile("/"+p, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("create /%s: %w", p, err)
		}
		if _, err := f.Write(files[p]); err != nil {
			f.Close()
			return fmt.Errorf("write /%s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close /%s: %w", p, err)
		}
	}
	return nil
}
