package configdrive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// ErrUnknownFS is returned by Probe when the device holds neither an
// ISO9660 nor a FAT filesystem.
var ErrUnknownFS = errors.New("no iso9660 or vfat filesystem")

// Filesystem types as Probe reports them (the names mount(2) takes).
const (
	FSISO9660 = "iso9660"
	FSVFAT    = "vfat"
)

// probeResult is what the superblock says. An ISO may carry two labels
// (primary and Joliet, the latter able to hold lower case); a drive
// matches if either does.
type probeResult struct {
	fstype  string
	label   string // the label blkid would show
	labels  []string
	joliet  bool   // ISO9660 with a Joliet supplementary descriptor
	fatBits int    // 12, 16 or 32 for vfat
	fats    int    // number of FAT copies (vfat)
	bpb     fatBPB // the boot sector (vfat)
}

func (p probeResult) matches(label string) bool {
	for _, l := range p.labels {
		if strings.EqualFold(l, label) {
			return true
		}
	}
	return false
}

// Probe reads the filesystem type and label from a device's first
// sectors, the way blkid does, without mounting: ISO9660 (primary volume
// descriptor, and the Joliet label when there is one) or FAT12/16/32 (the
// root directory's volume-label entry, else the boot sector's label). It
// reads at most a few hundred KiB and never panics on garbage.
func Probe(r io.ReaderAt) (fstype, label string, err error) {
	p, err := probe(r)
	if err != nil {
		return "", "", err
	}
	return p.fstype, p.label, nil
}

func probe(r io.ReaderAt) (probeResult, error) {
	if p, ok, err := probeISO(r); err != nil || ok {
		return p, err
	}
	if p, ok, err := probeFAT(r); err != nil || ok {
		return p, err
	}
	return probeResult{}, ErrUnknownFS
}

// readFull reads exactly len(b) bytes at off; a short read at the end of
// the device is reported as io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ECMA-119 8.1: volume descriptors start at sector 16 (byte 32768), one
// per 2048-byte sector, until the set terminator (type 255).
const (
	isoSector    = 2048
	isoVDStart   = 16 * isoSector
	isoMaxVDs    = 32 // real images have 2 to 4; bound the scan
	isoVDPrimary = 1
	isoVDSupp    = 2
	isoVDEnd     = 255
)

func probeISO(r io.ReaderAt) (probeResult, bool, error) {
	var p probeResult
	vd := make([]byte, isoSector)
	for i := 0; i < isoMaxVDs; i++ {
		if err := readFull(r, vd, isoVDStart+int64(i)*isoSector); err != nil {
			if i == 0 && errors.Is(err, io.ErrUnexpectedEOF) {
				return p, false, nil // too small to be an ISO
			}
			if i == 0 {
				return p, false, fmt.Errorf("read volume descriptor: %w", err)
			}
			break // a truncated image still has its label
		}
		if string(vd[1:6]) != "CD001" {
			if i == 0 {
				return p, false, nil
			}
			break
		}
		switch vd[0] {
		case isoVDPrimary:
			// ECMA-119 8.4.6: volume identifier, 32 d-characters, space padded.
			pvd := strings.TrimRight(string(vd[40:72]), " \x00")
			if p.fstype == "" {
				p.fstype, p.label = FSISO9660, pvd
			}
			p.labels = append(p.labels, pvd)
		case isoVDSupp:
			// Joliet: escape sequence %/@, %/C or %/E (UCS-2 levels 1-3) in
			// the SVD's escape sequences field (ECMA-119 8.5.6).
			esc := vd[88:120]
			if !bytes.Contains(esc, []byte("%/@")) && !bytes.Contains(esc, []byte("%/C")) && !bytes.Contains(esc, []byte("%/E")) {
				continue
			}
			p.joliet = true
			if l := ucs2(vd[40:72]); l != "" {
				p.labels = append(p.labels, l)
				// blkid shows the Joliet label: it is the one that can hold
				// lower case and more than 32 characters' worth of meaning.
				p.label = l
			}
		case isoVDEnd:
			i = isoMaxVDs
		}
	}
	if p.fstype == "" {
		if p.joliet {
			p.fstype = FSISO9660
			return p, true, nil
		}
		return p, false, nil
	}
	return p, true, nil
}

// ucs2 decodes a big-endian UCS-2 field, trimmed of padding.
func ucs2(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.BigEndian.Uint16(b[i:]))
	}
	return strings.TrimRight(string(utf16.Decode(u)), " \x00")
}

// fatBPB is the part of a FAT boot sector (BIOS parameter block) the
// probe and the reader need.
type fatBPB struct {
	bytesPerSector    uint32
	sectorsPerCluster uint32
	reserved          uint32
	numFATs           uint32
	rootEntries       uint32
	totalSectors      uint32
	fatSize           uint32
	rootCluster       uint32 // FAT32 only
	bits              int
	bootLabel         string
}

// parseFATBPB checks that the sector is a FAT boot sector (the same
// plausibility checks as the kernel's fat_read_bpb and blkid) and decodes
// it.
func parseFATBPB(bs []byte) (fatBPB, bool) {
	var b fatBPB
	if len(bs) < 512 || (bs[0] != 0xEB && bs[0] != 0xE9) {
		return b, false
	}
	b.bytesPerSector = uint32(binary.LittleEndian.Uint16(bs[11:]))
	b.sectorsPerCluster = uint32(bs[13])
	b.reserved = uint32(binary.LittleEndian.Uint16(bs[14:]))
	b.numFATs = uint32(bs[16])
	b.rootEntries = uint32(binary.LittleEndian.Uint16(bs[17:]))
	b.totalSectors = uint32(binary.LittleEndian.Uint16(bs[19:]))
	media := bs[21]
	b.fatSize = uint32(binary.LittleEndian.Uint16(bs[22:]))
	if b.totalSectors == 0 {
		b.totalSectors = binary.LittleEndian.Uint32(bs[32:])
	}
	if !isPow2(b.bytesPerSector) || b.bytesPerSector < 512 || b.bytesPerSector > 4096 ||
		!isPow2(b.sectorsPerCluster) || b.reserved == 0 || b.numFATs == 0 || b.numFATs > 4 ||
		(media != 0xF0 && media < 0xF8) {
		return b, false
	}
	labelOff := 43 // FAT12/16 extended BPB
	if b.fatSize == 0 {
		// FAT32: sectors per FAT and root cluster in the FAT32 BPB.
		b.fatSize = binary.LittleEndian.Uint32(bs[36:])
		b.rootCluster = binary.LittleEndian.Uint32(bs[44:])
		labelOff = 71
		if b.fatSize == 0 {
			return b, false
		}
	}
	rootDirSectors := (b.rootEntries*32 + b.bytesPerSector - 1) / b.bytesPerSector
	meta := uint64(b.reserved) + uint64(b.numFATs)*uint64(b.fatSize) + uint64(rootDirSectors)
	if uint64(b.totalSectors) <= meta {
		return b, false
	}
	// As the kernel's fat_fill_super: FAT32 when the 16-bit FAT size is
	// zero; otherwise FAT12 or FAT16 by cluster count (Microsoft's spec).
	clusters := (uint64(b.totalSectors) - meta) / uint64(b.sectorsPerCluster)
	switch {
	case labelOff == 71:
		b.bits = 32
	case clusters < 4085:
		b.bits = 12
	default:
		b.bits = 16
	}
	// Extended boot signature 0x29: volume id and label follow.
	if bs[labelOff-5] == 0x29 {
		b.bootLabel = fatLabel(bs[labelOff : labelOff+11])
	}
	return b, true
}

func isPow2(n uint32) bool { return n != 0 && n&(n-1) == 0 }

// fatLabel trims a FAT 8.3 label field; "NO NAME" is mkfs's way of saying
// there is none.
func fatLabel(b []byte) string {
	l := strings.TrimRight(string(b), " \x00")
	if l == "NO NAME" {
		return ""
	}
	return l
}

const (
	fatAttrVolumeID = 0x08
	fatAttrLFN      = 0x0F
	fatMaxRootRead  = 64 << 10 // bound the root directory scan
)

func probeFAT(r io.ReaderAt) (probeResult, bool, error) {
	var p probeResult
	bs := make([]byte, 512)
	if err := readFull(r, bs, 0); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return p, false, nil
		}
		return p, false, fmt.Errorf("read boot sector: %w", err)
	}
	b, ok := parseFATBPB(bs)
	if !ok {
		return p, false, nil
	}
	p.fstype, p.fatBits, p.fats, p.bpb = FSVFAT, b.bits, int(b.numFATs), b
	p.label = b.bootLabel
	// The root directory's volume-label entry is what Windows and the
	// kernel's vfat show and what mlabel changes; blkid prefers it too.
	if l, ok := fatRootLabel(r, b); ok {
		p.label = l
	}
	// Only the label shown counts: a stale boot-sector label left behind
	// by a relabel does not make a drive ours.
	if p.label != "" {
		p.labels = []string{p.label}
	}
	return p, true, nil
}

// fatRootLabel finds the volume-label entry in the root directory: the
// fixed area after the FATs on FAT12/16, the first cluster of the root
// directory on FAT32.
func fatRootLabel(r io.ReaderAt, b fatBPB) (string, bool) {
	bps := int64(b.bytesPerSector)
	var off, size int64
	if b.bits == 32 {
		dataStart := int64(b.reserved) + int64(b.numFATs)*int64(b.fatSize)
		if b.rootCluster < 2 {
			return "", false
		}
		off = (dataStart + int64(b.rootCluster-2)*int64(b.sectorsPerCluster)) * bps
		size = int64(b.sectorsPerCluster) * bps
	} else {
		off = (int64(b.reserved) + int64(b.numFATs)*int64(b.fatSize)) * bps
		size = int64(b.rootEntries) * 32
	}
	size = min(size, fatMaxRootRead)
	dir := make([]byte, size)
	n, err := r.ReadAt(dir, off)
	if n <= 0 && err != nil {
		return "", false
	}
	dir = dir[:n-n%32]
	for i := 0; i+32 <= len(dir); i += 32 {
		e := dir[i : i+32]
		switch {
		case e[0] == 0x00:
			return "", false // end of directory
		case e[0] == 0xE5:
			continue // deleted
		case e[11] == fatAttrLFN:
			continue
		case e[11]&fatAttrVolumeID != 0:
			name := append([]byte(nil), e[:11]...)
			if name[0] == 0x05 { // a leading 0xE5 byte is stored as 0x05
				name[0] = 0xE5
			}
			return fatLabel(name), true
		}
	}
	return "", false
}
