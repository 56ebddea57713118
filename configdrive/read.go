package configdrive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// MaxFileSize caps each file read off the drive. Real meta_data.json files
// are about 1 KiB and vendor_data.json about 20 KiB; a bigger file is a
// broken or hostile drive, not something to hold in memory at boot.
const MaxFileSize = 1 << 20

// DefaultRunDir holds the private mount points of the kernel fallback.
const DefaultRunDir = "/run/notos-agent"

var (
	// ErrNoOpenStack: the filesystem has no openstack/ directory, or none
	// with a version inside.
	ErrNoOpenStack = errors.New("no openstack/<version>/ directory")
	// ErrFileTooLarge: a file is over MaxFileSize.
	ErrFileTooLarge = errors.New("file larger than 1 MiB")
	// ErrNotRegular: a file the agent reads is a symbolic link or a
	// device on the drive.
	ErrNotRegular = errors.New("not a regular file")
	// ErrCorrupt: the filesystem reader met structures it could not follow.
	ErrCorrupt = errors.New("corrupt filesystem")
)

// ReadOptions tunes ReadFiles.
type ReadOptions struct {
	// RunDir is where the kernel fallback makes its private mount point;
	// DefaultRunDir when empty.
	RunDir string
}

func (o ReadOptions) runDir() string {
	if o.RunDir == "" {
		return DefaultRunDir
	}
	return o.RunDir
}

// ReadFiles reads a config drive (a block device or an image file) in
// userspace, without mounting: ISO9660 with Rock Ridge or Joliet names, or
// FAT12/16/32. When that fails on a block device, it falls back to
// mounting the device read-only with the kernel (see ReadMounted).
func ReadFiles(ctx context.Context, path string, o ReadOptions) (Files, error) {
	return driveReader{mnt: sysMounter{}, isBlock: isBlockDevice}.read(ctx, path, o)
}

// driveReader holds the two seams of ReadFiles: the mount syscalls and the
// block-device test, so the fallback decision can be tested on image files.
type driveReader struct {
	mnt     mounter
	isBlock func(path string) (bool, error)
}

func (d driveReader) read(ctx context.Context, path string, o ReadOptions) (Files, error) {
	if err := ctx.Err(); err != nil {
		return Files{}, fmt.Errorf("read %s: %w", path, err)
	}
	p, files, uerr := readUserspaceCtx(ctx, path)
	if uerr == nil {
		files.Source, files.FSType = path, p.fstype
		return files, nil
	}
	if p.fstype == "" || ctx.Err() != nil {
		return Files{}, uerr
	}
	block, err := d.isBlock(path)
	if err != nil {
		return Files{}, fmt.Errorf("read %s: %w", path, errors.Join(uerr, err))
	}
	if !block {
		return Files{}, fmt.Errorf("read %s (%s): %w", path, p.fstype, uerr)
	}
	// On a block device the kernel is the reference reader: whatever the
	// userspace readers could not read, or may have misread, it gets a say.
	files, kerr := readMounted(ctx, d.mnt, path, p.fstype, o)
	if kerr != nil {
		return Files{}, fmt.Errorf("read %s (%s) in userspace: %v; with the kernel: %w", path, p.fstype, uerr, kerr)
	}
	return files, nil
}

// readUserspaceCtx probes and reads path in userspace, giving up when ctx
// is done: a device that hangs on open or read, or a reader looping on a
// corrupt filesystem, must not hold up the boot. The abandoned goroutine
// ends when its read does.
func readUserspaceCtx(ctx context.Context, path string) (probeResult, Files, error) {
	type result struct {
		p     probeResult
		files Files
		err   error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- result{err: fmt.Errorf("read %s: %w: panic: %v", path, ErrCorrupt, v)}
			}
		}()
		f, err := os.Open(path)
		if err != nil {
			done <- result{err: fmt.Errorf("open drive: %w", err)}
			return
		}
		defer f.Close()
		p, err := probe(f)
		if err != nil {
			done <- result{err: fmt.Errorf("probe %s: %w", path, err)}
			return
		}
		files, err := readUserspace(f, p)
		done <- result{p, files, err}
	}()
	select {
	case r := <-done:
		return r.p, r.files, r.err
	case <-ctx.Done():
		return probeResult{}, Files{}, fmt.Errorf("read %s: %w", path, ctx.Err())
	}
}

func isBlockDevice(path string) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	return fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0, nil
}

// readUserspace reads the drive with go-diskfs. go-diskfs v1.9.4 cannot
// walk below the root of a Joliet-only ISO (its Joliet path table lookup
// loses the parent index), so when it fails on an ISO with a Joliet tree,
// the small Joliet reader in joliet.go has a go.
func readUserspace(r io.ReaderAt, p probeResult) (Files, error) {
	b := file.New(readOnlyFile{r}, true)
	switch p.fstype {
	case FSISO9660:
		files, err := guarded(func() (Files, error) {
			if err := preflight(r, p); err != nil {
				return Files{}, fmt.Errorf("not handed to go-diskfs: %w", err)
			}
			fsys, err := iso9660.Read(b, 0, 0, isoSector)
			if err != nil {
				return Files{}, fmt.Errorf("go-diskfs iso9660: %w", err)
			}
			return readTree(fsys)
		})
		if err == nil || !p.joliet || isContentError(err) {
			return files, err
		}
		files, jerr := guarded(func() (Files, error) {
			j, err := newJolietFS(r)
			if err != nil {
				return Files{}, err
			}
			return readTree(j)
		})
		if jerr != nil {
			return Files{}, fmt.Errorf("%w; joliet tree: %w", err, jerr)
		}
		return files, nil
	case FSVFAT:
		// go-diskfs v1.9.4 places the root directory and data after
		// exactly two FATs; with one (mkfs.vfat -f 1) it would read the
		// wrong sectors and report a wrong tree.
		if p.fats != 2 {
			return Files{}, fmt.Errorf("go-diskfs reads only FAT filesystems with 2 FAT copies, this one has %d: %w", p.fats, errors.ErrUnsupported)
		}
		return guarded(func() (Files, error) {
			if err := preflight(r, p); err != nil {
				return Files{}, fmt.Errorf("not handed to go-diskfs: %w", err)
			}
			var fsys fs.FS
			var err error
			switch p.fatBits {
			case 12:
				fsys, err = fat12.Read(b, 0, 0, 0)
			case 16:
				fsys, err = fat16.Read(b, 0, 0, 0)
			default:
				fsys, err = fat32.Read(b, 0, 0, 0)
			}
			if err != nil {
				return Files{}, fmt.Errorf("go-diskfs FAT%d: %w", p.fatBits, err)
			}
			return readTree(fsys)
		})
	}
	return Files{}, fmt.Errorf("read %s: %w", p.fstype, ErrUnknownFS)
}

// isContentError tells the drive's faults from the reader's: the Joliet
// tree of an ISO would show the same oversized file or missing directory
// as its Rock Ridge tree, so there is no point in reading it.
func isContentError(err error) bool {
	return errors.Is(err, ErrNoOpenStack) || errors.Is(err, ErrNoMetaData) ||
		errors.Is(err, ErrFileTooLarge) || errors.Is(err, ErrNotRegular)
}

// guarded runs a filesystem reader and turns its panic into an error:
// go-diskfs trusts on-disk sizes and offsets, and a corrupt image can make
// it index out of range. That is a bad drive, not a reason to stop a boot.
func guarded(read func() (Files, error)) (files Files, err error) {
	defer func() {
		if v := recover(); v != nil {
			files, err = Files{}, fmt.Errorf("%w: reader panicked: %v", ErrCorrupt, v)
		}
	}()
	return read()
}

// readOnlyFile adapts an io.ReaderAt to the fs.File go-diskfs's backend
// wants; the filesystems only ever call ReadAt.
type readOnlyFile struct{ io.ReaderAt }

func (readOnlyFile) Stat() (fs.FileInfo, error) { return nil, errors.ErrUnsupported }
func (readOnlyFile) Read([]byte) (int, error)   { return 0, errors.ErrUnsupported }
func (readOnlyFile) Close() error               { return nil }

var datedVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// readTree reads the config-drive files from a filesystem tree, whatever
// read it (go-diskfs, the Joliet reader, or a kernel mount). Names are
// matched without regard to case: FAT and some ISO writers change it.
func readTree(fsys fs.FS) (Files, error) {
	var files Files
	root, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return files, fmt.Errorf("read root directory: %w", err)
	}
	osEnt, ok := findEntry(root, "openstack", true)
	if !ok {
		return files, fmt.Errorf("openstack/: %w", ErrNoOpenStack)
	}
	osDir := osEnt.Name()
	versions, err := fs.ReadDir(fsys, osDir)
	if err != nil {
		return files, fmt.Errorf("read %s/: %w", osDir, err)
	}
	version, ok := pickVersion(versions)
	if !ok {
		return files, fmt.Errorf("%s/: %w", osDir, ErrNoOpenStack)
	}
	vdir := path.Join(osDir, version)
	entries, err := fs.ReadDir(fsys, vdir)
	if err != nil {
		return files, fmt.Errorf("read %s/: %w", vdir, err)
	}
	files.Version = version
	for _, want := range []struct {
		name     string
		dst      *[]byte
		required bool
	}{
		{"meta_data.json", &files.MetaData, true},
		{"network_data.json", &files.NetworkData, false},
		{"vendor_data.json", &files.VendorData, false},
		{"user_data", &files.UserData, false},
	} {
		e, ok := findEntry(entries, want.name, false)
		if !ok {
			if want.required {
				return files, fmt.Errorf("%s/%s: %w", vdir, want.name, ErrNoMetaData)
			}
			continue
		}
		if *want.dst, err = readCapped(fsys, vdir, e); err != nil {
			return files, err
		}
	}
	if e, ok := findEntry(root, "digitalocean_meta_data.json", false); ok {
		if files.DigitalOcean, err = readCapped(fsys, ".", e); err != nil {
			return files, err
		}
	}
	return files, nil
}

// findEntry returns the entry called name (any case) that is a directory
// or not, as asked.
func findEntry(entries []fs.DirEntry, name string, dir bool) (fs.DirEntry, bool) {
	for _, e := range entries {
		if strings.EqualFold(e.Name(), name) && e.IsDir() == dir {
			return e, true
		}
	}
	return nil, false
}

// pickVersion chooses openstack/latest, else the newest dated directory
// (the names are ISO 8601 dates, so they sort as strings).
func pickVersion(entries []fs.DirEntry) (string, bool) {
	if e, ok := findEntry(entries, "latest", true); ok {
		return e.Name(), true
	}
	var dated []string
	for _, e := range entries {
		if e.IsDir() && datedVersion.MatchString(e.Name()) {
			dated = append(dated, e.Name())
		}
	}
	if len(dated) == 0 {
		return "", false
	}
	sort.Strings(dated)
	return dated[len(dated)-1], true
}

// readCapped reads the file e of directory dir, at most MaxFileSize
// bytes. The directory entry's size is the file's size: the reader is not
// trusted to stop there (go-diskfs's FAT reader returns the slack of the
// last cluster).
func readCapped(fsys fs.FS, dir string, e fs.DirEntry) ([]byte, error) {
	name := path.Join(dir, e.Name())
	info, err := e.Info()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	// A symbolic link on the drive is not followed: through a kernel
	// mount it could name any file of this system (/etc/shadow).
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: %w (%s)", name, ErrNotRegular, info.Mode().Type())
	}
	size := info.Size()
	if size > MaxFileSize {
		return nil, fmt.Errorf("read %s: %d bytes: %w", name, size, ErrFileTooLarge)
	}
	if size == 0 {
		// Empty (DigitalOcean's user_data). On FAT an empty file has no
		// cluster, and go-diskfs refuses to open it.
		return []byte{}, nil
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read %s (%d bytes): %w", name, size, err)
	}
	return b, nil
}
