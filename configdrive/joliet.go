package configdrive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// jolietFS reads the Joliet directory tree of an ISO9660 image: just enough
// of ECMA-119 9.1 (directory records) to list directories and read files.
// It exists because go-diskfs v1.9.4 cannot descend below the root of a
// Joliet-only image (genisoimage -J without -r), whose primary tree holds
// only 8.3 names such as DIGITALO.JSO;1.
type jolietFS struct {
	r    io.ReaderAt
	root jolietEntry
}

// jolietEntry is one directory record.
type jolietEntry struct {
	name   string
	dir    bool
	extent uint32 // first logical block
	size   uint32
}

// Directories of a config drive are a few records long; a directory larger
// than this is garbage.
const jolietMaxDir = 1 << 20

func newJolietFS(r io.ReaderAt) (*jolietFS, error) {
	p, ok, err := probeISO(r)
	if err != nil {
		return nil, err
	}
	if !ok || !p.joliet {
		return nil, errors.New("no Joliet volume descriptor")
	}
	vd := make([]byte, isoSector)
	for i := 0; i < isoMaxVDs; i++ {
		if err := readFull(r, vd, isoVDStart+int64(i)*isoSector); err != nil {
			return nil, fmt.Errorf("read volume descriptor %d: %w", i, err)
		}
		if vd[0] != isoVDSupp || string(vd[1:6]) != "CD001" {
			continue
		}
		// ECMA-119 8.5: the root directory record sits at byte 156 of the
		// descriptor, 34 bytes long.
		root, _, err := parseDirRecord(vd[156:190])
		if err != nil {
			return nil, fmt.Errorf("joliet root record: %w", err)
		}
		root.name, root.dir = ".", true
		return &jolietFS{r: r, root: root}, nil
	}
	return nil, errors.New("no Joliet volume descriptor")
}

// parseDirRecord decodes the directory record at the start of b and
// returns it with its length. A zero length byte means "no more records in
// this sector".
func parseDirRecord(b []byte) (jolietEntry, int, error) {
	var e jolietEntry
	if len(b) == 0 || b[0] == 0 {
		return e, 0, nil
	}
	n := int(b[0])
	if n < 34 || n > len(b) {
		return e, 0, fmt.Errorf("directory record length %d out of bounds", n)
	}
	nameLen := int(b[32])
	if 33+nameLen > n {
		return e, 0, fmt.Errorf("directory record name length %d out of bounds", nameLen)
	}
	e.extent = binary.LittleEndian.Uint32(b[2:6])
	e.size = binary.LittleEndian.Uint32(b[10:14])
	e.dir = b[25]&0x02 != 0
	name := b[33 : 33+nameLen]
	switch {
	case nameLen == 1 && name[0] == 0:
		e.name = "."
	case nameLen == 1 && name[0] == 1:
		e.name = ".."
	default:
		// Joliet names are UCS-2 big endian; files carry ";1".
		e.name = ucs2(name)
		if i := strings.LastIndexByte(e.name, ';'); i >= 0 && !e.dir {
			e.name = e.name[:i]
		}
	}
	return e, n, nil
}

func (j *jolietFS) readDir(d jolietEntry) ([]jolietEntry, error) {
	if d.size > jolietMaxDir {
		return nil, fmt.Errorf("joliet directory %s: size %d over %d", d.name, d.size, jolietMaxDir)
	}
	b := make([]byte, d.size)
	if err := readFull(j.r, b, int64(d.extent)*isoSector); err != nil {
		return nil, fmt.Errorf("read joliet directory %s: %w", d.name, err)
	}
	var out []jolietEntry
	for off := 0; off < len(b); {
		e, n, err := parseDirRecord(b[off:])
		if err != nil {
			return nil, fmt.Errorf("joliet directory %s at byte %d: %w", d.name, off, err)
		}
		if n == 0 {
			// ECMA-119 6.8.1.1: records do not cross sectors; the rest of
			// this one is padding.
			off = (off/isoSector + 1) * isoSector
			continue
		}
		off += n
		if e.name != "." && e.name != ".." && e.name != "" {
			out = append(out, e)
		}
	}
	return out, nil
}

func (j *jolietFS) lookup(name string) (jolietEntry, error) {
	if !fs.ValidPath(name) {
		return jolietEntry{}, fs.ErrInvalid
	}
	cur := j.root
	if name == "." {
		return cur, nil
	}
	for _, part := range strings.Split(name, "/") {
		if !cur.dir {
			return jolietEntry{}, fs.ErrNotExist
		}
		entries, err := j.readDir(cur)
		if err != nil {
			return jolietEntry{}, err
		}
		found := false
		for _, e := range entries {
			if e.name == part {
				cur, found = e, true
				break
			}
		}
		if !found {
			return jolietEntry{}, fs.ErrNotExist
		}
	}
	return cur, nil
}

// Open implements fs.FS.
func (j *jolietFS) Open(name string) (fs.File, error) {
	e, err := j.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &jolietFile{SectionReader: io.NewSectionReader(j.r, int64(e.extent)*isoSector, int64(e.size)), e: e}, nil
}

// ReadDir implements fs.ReadDirFS.
func (j *jolietFS) ReadDir(name string) ([]fs.DirEntry, error) {
	d, err := j.lookup(name)
	if err == nil && !d.dir {
		err = errors.New("not a directory")
	}
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	entries, err := j.readDir(d)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(entries))
	for i, e := range entries {
		out[i] = fs.FileInfoToDirEntry(e)
	}
	return out, nil
}

type jolietFile struct {
	*io.SectionReader
	e jolietEntry
}

func (f *jolietFile) Stat() (fs.FileInfo, error) { return f.e, nil }
func (f *jolietFile) Close() error               { return nil }

// jolietEntry is its own fs.FileInfo.
func (e jolietEntry) Name() string       { return e.name }
func (e jolietEntry) Size() int64        { return int64(e.size) }
func (e jolietEntry) ModTime() time.Time { return time.Time{} }
func (e jolietEntry) IsDir() bool        { return e.dir }
func (e jolietEntry) Sys() any           { return nil }
func (e jolietEntry) Mode() fs.FileMode {
	if e.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
