package mkdrive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

const sectorSize = 2048 // ISO9660 logical block size

// randomAccess is an image being mended in place.
type randomAccess interface {
	io.ReaderAt
	io.WriterAt
}

// writeISO writes files to f as ISO9660 with Rock Ridge (for Linux's
// isofs) and Joliet (for readers that only know Joliet, as `genisoimage
// -J` drives need) labelled config-2.
func writeISO(f *os.File, files map[string][]byte) error {
	if err := finalizeISO(f, files); err != nil {
		return err
	}
	if err := fixJoliet(f); err != nil {
		return err
	}
	return padToVolumeSize(f)
}

// finalizeISO is go-diskfs's part of writeISO.
//
// go-diskfs v1.9.4 pads a file's last sector by writing a whole sector of
// zeros after a file that is empty or a multiple of 2048 bytes long. After
// the last file that sector is the Joliet root directory. Files puts
// openstack/latest/vendor_data.json ("{}") last, and fixJoliet refuses an
// image whose Joliet root was overwritten.
func finalizeISO(f *os.File, files map[string][]byte) error {
	ws, err := os.MkdirTemp("", "notos-mkdrive-")
	if err != nil {
		return fmt.Errorf("create workspace: %w", err)
	}
	defer os.RemoveAll(ws)
	// The workspace root becomes the image's root directory: its Rock Ridge
	// mode is the workspace's (MkdirTemp makes it 0700).
	if err := os.Chmod(ws, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", ws, err)
	}
	fsys, err := iso9660.Create(file.New(f, false), 0, 0, sectorSize, ws)
	if err != nil {
		return fmt.Errorf("create iso9660 filesystem: %w", err)
	}
	if err := populate(fsys, files); err != nil {
		return err
	}
	if err := fsys.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: ISOLabel}); err != nil {
		return fmt.Errorf("finalize iso9660 filesystem: %w", err)
	}
	return nil
}

// Volume descriptors (ECMA-119 8.4, 8.5).
const (
	vdFirstSector   = 16
	vdPrimary       = 1
	vdSupplementary = 2
	vdTerminator    = 255
)

// isJolietSVD reports whether the supplementary volume descriptor vd is
// Joliet's: its escape sequences name UCS-2 level 1, 2 or 3.
func isJolietSVD(vd []byte) bool {
	esc := vd[88:91]
	return esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E')
}

// fixJoliet mends the Joliet directory tree go-diskfs v1.9.4 writes: the
// record of every subdirectory in a Joliet directory carries the extent and
// size of the primary (8.3 + Rock Ridge) directory instead of the Joliet
// one, so a Joliet reader descends into the primary tree and sees its 8.3
// names as UCS-2 garbage. The Joliet path table is right; each record is
// pointed at the extent the path table gives for the same name and parent.
// A tree that is already right is left byte for byte.
func fixJoliet(rw randomAccess) error {
	var svd []byte
	for s := int64(vdFirstSector); ; s++ {
		vd := make([]byte, sectorSize)
		if _, err := rw.ReadAt(vd, s*sectorSize); err != nil {
			return fmt.Errorf("read volume descriptor at sector %d: %w", s, err)
		}
		if string(vd[1:6]) != "CD001" {
			return fmt.Errorf("read volume descriptor at sector %d: no CD001 signature", s)
		}
		if vd[0] == vdTerminator {
			break
		}
		if vd[0] == vdSupplementary && isJolietSVD(vd) {
			svd = vd
			break
		}
	}
	if svd == nil {
		return errors.New("fix Joliet tree: no Joliet volume descriptor")
	}
	ptSize := binary.LittleEndian.Uint32(svd[132:136])
	ptLoc := binary.LittleEndian.Uint32(svd[140:144])
	pt := make([]byte, ptSize)
	if _, err := rw.ReadAt(pt, int64(ptLoc)*sectorSize); err != nil {
		return fmt.Errorf("read Joliet path table at sector %d: %w", ptLoc, err)
	}
	table, err := parsePathTable(pt)
	if err != nil {
		return fmt.Errorf("parse Joliet path table at sector %d: %w", ptLoc, err)
	}
	root := svd[156 : 156+34]
	return fixJolietDir(rw, table, 1, binary.LittleEndian.Uint32(root[2:6]), 0)
}

// pathEntry is one path table record (ECMA-119 9.4); index is 1-based.
type pathEntry struct {
	parent   uint16
	name     string
	location uint32
}

func parsePathTable(b []byte) ([]pathEntry, error) {
	var t []pathEntry
	for o := 0; o < len(b); {
		if o+8 > len(b) {
			return nil, fmt.Errorf("record at byte %d truncated", o)
		}
		n := int(b[o])
		if n == 0 || o+8+n > len(b) {
			return nil, fmt.Errorf("record at byte %d has a bad name length %d", o, n)
		}
		t = append(t, pathEntry{
			location: binary.LittleEndian.Uint32(b[o+2 : o+6]),
			parent:   binary.LittleEndian.Uint16(b[o+6 : o+8]),
			name:     string(b[o+8 : o+8+n]),
		})
		o += 8 + n + n%2
	}
	return t, nil
}

// fixJolietDir mends the directory at sector loc, path table index idx,
// then its subdirectories. depth bounds the walk against a looping tree.
func fixJolietDir(rw randomAccess, table []pathEntry, idx int, loc uint32, depth int) error {
	if depth > 64 {
		return fmt.Errorf("Joliet directory at sector %d: tree deeper than 64", loc)
	}
	first := make([]byte, sectorSize)
	if _, err := rw.ReadAt(first, int64(loc)*sectorSize); err != nil {
		return fmt.Errorf("read Joliet directory at sector %d: %w", loc, err)
	}
	// The first record is "." (identifier 0x00) and gives the size.
	if first[0] < 34 || first[32] != 1 || first[33] != 0 || binary.LittleEndian.Uint32(first[2:6]) != loc {
		return fmt.Errorf("Joliet directory at sector %d: first record is not '.'", loc)
	}
	size := binary.LittleEndian.Uint32(first[10:14])
	dir := make([]byte, (int(size)+sectorSize-1)/sectorSize*sectorSize)
	if _, err := rw.ReadAt(dir, int64(loc)*sectorSize); err != nil {
		return fmt.Errorf("read Joliet directory at sector %d: %w", loc, err)
	}
	changed := false
	type sub struct {
		idx int
		loc uint32
	}
	var subs []sub
	for o := 0; o < int(size); {
		n := int(dir[o])
		if n == 0 { // records do not cross sectors: the rest is padding
			o = (o/sectorSize + 1) * sectorSize
			continue
		}
		if n < 34 || o+n > len(dir) {
			return fmt.Errorf("Joliet directory at sector %d: bad record length %d at byte %d", loc, n, o)
		}
		rec := dir[o : o+n]
		o += n
		idLen := int(rec[32])
		if rec[25]&2 == 0 || idLen == 1 && (rec[33] == 0 || rec[33] == 1) {
			continue // a file, ".", or ".."
		}
		name := string(rec[33 : 33+idLen])
		child := -1
		for i, e := range table {
			if int(e.parent) == idx && e.name == name && i+1 != idx {
				child = i + 1
				break
			}
		}
		if child < 0 {
			return fmt.Errorf("Joliet directory at sector %d: subdirectory %q is not in the path table", loc, ucs2(name))
		}
		cloc := table[child-1].location
		self := make([]byte, 34)
		if _, err := rw.ReadAt(self, int64(cloc)*sectorSize); err != nil {
			return fmt.Errorf("read Joliet directory at sector %d: %w", cloc, err)
		}
		csize := binary.LittleEndian.Uint32(self[10:14])
		if binary.LittleEndian.Uint32(rec[2:6]) != cloc || binary.LittleEndian.Uint32(rec[10:14]) != csize {
			putBoth32(rec[2:10], cloc)
			putBoth32(rec[10:18], csize)
			changed = true
		}
		subs = append(subs, sub{child, cloc})
	}
	if changed {
		if _, err := rw.WriteAt(dir, int64(loc)*sectorSize); err != nil {
			return fmt.Errorf("write Joliet directory at sector %d: %w", loc, err)
		}
	}
	for _, s := range subs {
		if err := fixJolietDir(rw, table, s.idx, s.loc, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// putBoth32 writes v in ECMA-119's both-byte-order form (7.3.3).
func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b[0:4], v)
	binary.BigEndian.PutUint32(b[4:8], v)
}

// ucs2 decodes a big-endian UCS-2 identifier, for error messages.
func ucs2(s string) string {
	r := make([]rune, 0, len(s)/2)
	for i := 0; i+1 < len(s); i += 2 {
		r = append(r, rune(s[i])<<8|rune(s[i+1]))
	}
	return string(r)
}

// padToVolumeSize extends the image to the size its primary volume
// descriptor declares: go-diskfs ends the file after the last path table,
// short of the last sector, and a reader of the final sector (or a loop
// device sized from the file) would come up short.
func padToVolumeSize(f *os.File) error {
	pvd := make([]byte, sectorSize)
	if _, err := f.ReadAt(pvd, vdFirstSector*sectorSize); err != nil {
		return fmt.Errorf("read primary volume descriptor: %w", err)
	}
	if pvd[0] != vdPrimary || string(pvd[1:6]) != "CD001" {
		return errors.New("read primary volume descriptor: not found at sector 16")
	}
	want := int64(binary.LittleEndian.Uint32(pvd[80:84])) * sectorSize
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if fi.Size() < want {
		if err := f.Truncate(want); err != nil {
			return fmt.Errorf("extend %s to %d bytes: %w", f.Name(), want, err)
		}
	}
	return nil
}
