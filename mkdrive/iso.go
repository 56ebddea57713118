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

// writeISO writes files to f as ISO9660 labelled config-2 with two trees
// of long names, as `genisoimage -J -r` does: Rock Ridge, which Linux's
// isofs uses, and Joliet, for readers without Rock Ridge (isofs -o norock,
// Windows). go-diskfs lays the image out; the passes after it mend and
// tidy what it gets wrong, each a no-op on genisoimage's output.
func writeISO(f *os.File, files map[string][]byte) error {
	if err := finalizeISO(f, files); err != nil {
		return err
	}
	if err := fixJoliet(f); err != nil {
		return err
	}
	if err := roundDirSizes(f); err != nil {
		return err
	}
	if err := tidyDescriptors(f); err != nil {
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
	return vd[0] == vdSupplementary && esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E')
}

// volumeDescriptor is one sector of the volume descriptor set.
type volumeDescriptor struct {
	sector int64
	b      []byte
}

// rootRecord is the descriptor's root directory record.
func (vd volumeDescriptor) rootRecord() []byte { return vd.b[156 : 156+34] }

// readVolumeDescriptors reads the set from sector 16 to its terminator.
func readVolumeDescriptors(rw randomAccess) ([]volumeDescriptor, error) {
	var vds []volumeDescriptor
	for s := int64(vdFirstSector); s < vdFirstSector+64; s++ {
		b := make([]byte, sectorSize)
		if _, err := rw.ReadAt(b, s*sectorSize); err != nil {
			return nil, fmt.Errorf("read volume descriptor at sector %d: %w", s, err)
		}
		if string(b[1:6]) != "CD001" {
			return nil, fmt.Errorf("read volume descriptor at sector %d: no CD001 signature", s)
		}
		if b[0] == vdTerminator {
			return vds, nil
		}
		vds = append(vds, volumeDescriptor{s, b})
	}
	return nil, errors.New("read volume descriptors: no terminator in 64 sectors")
}

// readDir reads the directory at sector loc, in whole sectors. Its first
// record must be "." (identifier 0x00) pointing at loc: it gives the size.
func readDir(rw randomAccess, loc uint32) ([]byte, error) {
	first := make([]byte, sectorSize)
	if _, err := rw.ReadAt(first, int64(loc)*sectorSize); err != nil {
		return nil, fmt.Errorf("read directory at sector %d: %w", loc, err)
	}
	if first[0] < 34 || first[32] != 1 || first[33] != 0 || binary.LittleEndian.Uint32(first[2:6]) != loc {
		return nil, fmt.Errorf("directory at sector %d: first record is not '.'", loc)
	}
	dir := make([]byte, roundUp(binary.LittleEndian.Uint32(first[10:14])))
	if _, err := rw.ReadAt(dir, int64(loc)*sectorSize); err != nil {
		return nil, fmt.Errorf("read directory at sector %d: %w", loc, err)
	}
	return dir, nil
}

// records splits a directory into its records, slices of dir.
func records(dir []byte, loc uint32) ([][]byte, error) {
	var recs [][]byte
	for o := 0; o < len(dir); {
		n := int(dir[o])
		if n == 0 { // records do not cross sectors: the rest is padding
			o = (o/sectorSize + 1) * sectorSize
			continue
		}
		if n < 34 || o+n > len(dir) || 33+int(dir[o+32]) > n {
			return nil, fmt.Errorf("directory at sector %d: bad record at byte %d", loc, o)
		}
		recs = append(recs, dir[o:o+n])
		o += n
	}
	return recs, nil
}

func isDir(rec []byte) bool { return rec[25]&2 != 0 }

// isSelfOrParent: "." and ".." are the identifiers 0x00 and 0x01.
func isSelfOrParent(rec []byte) bool { return rec[32] == 1 && rec[33] <= 1 }

// fixJoliet mends the Joliet directory tree go-diskfs v1.9.4 writes: the
// record of every subdirectory in a Joliet directory carries the extent and
// size of the primary (8.3 + Rock Ridge) directory instead of the Joliet
// one, so a Joliet reader descends into the primary tree and sees its 8.3
// names as UCS-2 garbage. The Joliet path table is right; each record is
// pointed at the extent the path table gives for the same name and parent.
// A tree that is already right is left byte for byte.
func fixJoliet(rw randomAccess) error {
	vds, err := readVolumeDescriptors(rw)
	if err != nil {
		return err
	}
	for _, vd := range vds {
		if !isJolietSVD(vd.b) {
			continue
		}
		ptSize := binary.LittleEndian.Uint32(vd.b[132:136])
		ptLoc := binary.LittleEndian.Uint32(vd.b[140:144])
		pt := make([]byte, ptSize)
		if _, err := rw.ReadAt(pt, int64(ptLoc)*sectorSize); err != nil {
			return fmt.Errorf("read Joliet path table at sector %d: %w", ptLoc, err)
		}
		table, err := parsePathTable(pt)
		if err != nil {
			return fmt.Errorf("parse Joliet path table at sector %d: %w", ptLoc, err)
		}
		return fixJolietDir(rw, table, 1, binary.LittleEndian.Uint32(vd.rootRecord()[2:6]), 0)
	}
	return errors.New("fix Joliet tree: no Joliet volume descriptor")
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
	dir, err := readDir(rw, loc)
	if err != nil {
		return fmt.Errorf("Joliet tree: %w", err)
	}
	recs, err := records(dir, loc)
	if err != nil {
		return fmt.Errorf("Joliet tree: %w", err)
	}
	changed := false
	type sub struct {
		idx int
		loc uint32
	}
	var subs []sub
	for _, rec := range recs {
		if !isDir(rec) || isSelfOrParent(rec) {
			continue
		}
		name := string(rec[33 : 33+int(rec[32])])
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

// roundDirSizes records every directory's size as whole sectors, in both
// trees, as genisoimage and xorriso do: go-diskfs records the bytes used
// (520), which readers accept but isovfy flags as "unusual". A directory
// owns its sectors up to the next extent, and the rest of its last sector
// is zero, which readers skip as the end of the sector's records
// (ECMA-119 6.8.1.1).
func roundDirSizes(rw randomAccess) error {
	vds, err := readVolumeDescriptors(rw)
	if err != nil {
		return err
	}
	for _, vd := range vds {
		if vd.b[0] != vdPrimary && !isJolietSVD(vd.b) {
			continue
		}
		root := vd.rootRecord()
		if roundRecordSize(root) {
			if _, err := rw.WriteAt(vd.b, vd.sector*sectorSize); err != nil {
				return fmt.Errorf("write volume descriptor at sector %d: %w", vd.sector, err)
			}
		}
		if err := roundDir(rw, binary.LittleEndian.Uint32(root[2:6]), 0); err != nil {
			return err
		}
	}
	return nil
}

// roundDir rounds the sizes in the directory at sector loc, then in its
// subdirectories.
func roundDir(rw randomAccess, loc uint32, depth int) error {
	if depth > 64 {
		return fmt.Errorf("directory at sector %d: tree deeper than 64", loc)
	}
	dir, err := readDir(rw, loc)
	if err != nil {
		return err
	}
	recs, err := records(dir, loc)
	if err != nil {
		return err
	}
	changed := false
	var subs []uint32
	for _, rec := range recs {
		if !isDir(rec) {
			continue
		}
		changed = roundRecordSize(rec) || changed
		if !isSelfOrParent(rec) {
			subs = append(subs, binary.LittleEndian.Uint32(rec[2:6]))
		}
	}
	if changed {
		if _, err := rw.WriteAt(dir, int64(loc)*sectorSize); err != nil {
			return fmt.Errorf("write directory at sector %d: %w", loc, err)
		}
	}
	for _, s := range subs {
		if err := roundDir(rw, s, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// roundRecordSize rounds a directory record's data length up to whole
// sectors and reports whether it changed.
func roundRecordSize(rec []byte) bool {
	size := binary.LittleEndian.Uint32(rec[10:14])
	if r := roundUp(size); r != size {
		putBoth32(rec[10:18], r)
		return true
	}
	return false
}

func roundUp(n uint32) uint32 { return (n + sectorSize - 1) / sectorSize * sectorSize }

// Identifier fields of the primary and supplementary volume descriptors
// (ECMA-119 8.4.5 to 8.4.24): offset and length.
var identifierFields = [][2]int{
	{8, 32}, {40, 32}, // system, volume
	{190, 128}, {318, 128}, {446, 128}, {574, 128}, // volume set, publisher, preparer, application
	{702, 37}, {739, 37}, {776, 37}, // copyright, abstract and bibliographic files
}

// Volume Expiration Date and Time (ECMA-119 8.4.28), 17 bytes.
const expirationOffset = 847

// tidyDescriptors makes the primary and Joliet descriptors read as
// genisoimage's do, where go-diskfs writes them otherwise:
//   - identifiers are padded with spaces (ECMA-119 7.4: a- and
//     d-characters; Joliet: UCS-2 spaces, 00 20), not NULs;
//   - the expiration date is "not specified" (sixteen '0' digits and a
//     zero offset, ECMA-119 8.4.26.1) instead of the moment of writing,
//     which would declare the volume obsolete as soon as it is made.
func tidyDescriptors(rw randomAccess) error {
	vds, err := readVolumeDescriptors(rw)
	if err != nil {
		return err
	}
	for _, vd := range vds {
		joliet := isJolietSVD(vd.b)
		if vd.b[0] != vdPrimary && !joliet {
			continue
		}
		before := string(vd.b)
		for _, f := range identifierFields {
			padIdentifier(vd.b[f[0]:f[0]+f[1]], joliet)
		}
		if exp := vd.b[expirationOffset : expirationOffset+17]; exp[0] != '0' || exp[15] != '0' {
			copy(exp, "0000000000000000\x00")
		}
		if string(vd.b) != before {
			if _, err := rw.WriteAt(vd.b, vd.sector*sectorSize); err != nil {
				return fmt.Errorf("write volume descriptor at sector %d: %w", vd.sector, err)
			}
		}
	}
	return nil
}

// padIdentifier replaces the NULs after an identifier's text with spaces,
// one byte at a time or, for Joliet, one UCS-2 character (two bytes) at a
// time; an odd last byte of a Joliet field stays 0.
func padIdentifier(f []byte, joliet bool) {
	step, space := 1, []byte{' '}
	if joliet {
		step, space = 2, []byte{0, ' '}
	}
	end := 0 // just past the last character that is not NUL
	for i := 0; i+step <= len(f); i += step {
		for _, c := range f[i : i+step] {
			if c != 0 {
				end = i + step
			}
		}
	}
	for i := end; i+step <= len(f); i += step {
		copy(f[i:], space)
	}
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
