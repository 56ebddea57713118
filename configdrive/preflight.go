package configdrive

import (
	"encoding/binary"
	"fmt"
	"io"
)

// go-diskfs v1.9.4 trusts the sizes it reads off the disk: it allocates a
// path table, a directory or a Rock Ridge continuation area as large as the
// disk claims (up to 4 GiB), and follows FAT cluster chains with no cycle
// check, appending forever. A Go program cannot recover from running out
// of memory, so these checks run before go-diskfs sees a drive: a drive
// that fails them is read by the bounded Joliet reader or the kernel.

const (
	// maxStructure bounds a path table, a directory or a continuation
	// area: a config drive's are a few KiB.
	maxStructure = 1 << 20
	// isoMaxDirs bounds the directories walked; a config drive has a
	// handful.
	isoMaxDirs = 4096
	// isoMaxDepth: deeper trees are Rock Ridge relocations, which a
	// config drive never needs.
	isoMaxDepth = 8
	// fatMaxClusters bounds the cycle check's table (64 MiB of FAT32
	// entries); a config drive is a few MiB.
	fatMaxClusters = 16 << 20
)

// preflight runs the check for the filesystem Probe found.
func preflight(r io.ReaderAt, p probeResult) error {
	if p.fstype == FSVFAT {
		return preflightFAT(r, p.bpb)
	}
	return preflightISO(r)
}

// preflightISO checks every size go-diskfs will allocate from, in the
// primary and supplementary trees: path tables, directories (reached by
// the tree and by the path table) and Rock Ridge continuation areas.
func preflightISO(r io.ReaderAt) error {
	vd := make([]byte, isoSector)
	dirs := 0
	for i := 0; i < isoMaxVDs; i++ {
		if err := readFull(r, vd, isoVDStart+int64(i)*isoSector); err != nil {
			return fmt.Errorf("volume descriptor %d: %w", i, err)
		}
		if string(vd[1:6]) != "CD001" || vd[0] == isoVDEnd {
			return nil
		}
		if vd[0] != isoVDPrimary && vd[0] != isoVDSupp {
			continue
		}
		// ECMA-119 8.4.14 and 8.4.15: path table size, then the type L
		// table's location.
		ptSize := binary.LittleEndian.Uint32(vd[132:136])
		if ptSize > maxStructure {
			return fmt.Errorf("%w: path table of %d bytes", ErrCorrupt, ptSize)
		}
		pt := make([]byte, ptSize)
		if err := readFull(r, pt, int64(binary.LittleEndian.Uint32(vd[140:144]))*isoSector); err != nil {
			return fmt.Errorf("read path table: %w", err)
		}
		if err := checkPathTable(r, pt); err != nil {
			return err
		}
		root, _, err := parseDirRecord(vd[156:190])
		if err != nil {
			return fmt.Errorf("%w: root directory record: %v", ErrCorrupt, err)
		}
		root.dir = true
		if err := walkISODir(r, root, 0, &dirs); err != nil {
			return err
		}
	}
	return nil
}

// checkPathTable checks the size that each path table entry's directory
// gives itself (its "." record), which go-diskfs reads to size the
// directory.
func checkPathTable(r io.ReaderAt, pt []byte) error {
	size := make([]byte, 4)
	for off := 0; off+8 <= len(pt); {
		nameLen := int(pt[off])
		if nameLen == 0 {
			return nil
		}
		loc := binary.LittleEndian.Uint32(pt[off+2 : off+6])
		if err := readFull(r, size, int64(loc)*isoSector+10); err != nil {
			return fmt.Errorf("%w: path table points outside the image: %v", ErrCorrupt, err)
		}
		if n := binary.LittleEndian.Uint32(size); n > maxStructure {
			return fmt.Errorf("%w: directory at block %d claims %d bytes", ErrCorrupt, loc, n)
		}
		off += 8 + nameLen + nameLen%2
	}
	return nil
}

func walkISODir(r io.ReaderAt, d jolietEntry, depth int, dirs *int) error {
	*dirs++
	if *dirs > isoMaxDirs {
		return fmt.Errorf("%w: more than %d directories", ErrCorrupt, isoMaxDirs)
	}
	if d.size > maxStructure {
		return fmt.Errorf("%w: directory of %d bytes", ErrCorrupt, d.size)
	}
	b := make([]byte, d.size)
	if err := readFull(r, b, int64(d.extent)*isoSector); err != nil {
		return fmt.Errorf("read directory at block %d: %w", d.extent, err)
	}
	for off := 0; off < len(b); {
		e, n, err := parseDirRecord(b[off:])
		if err != nil {
			return fmt.Errorf("%w: directory at block %d: %v", ErrCorrupt, d.extent, err)
		}
		if n == 0 {
			off = (off/isoSector + 1) * isoSector // ECMA-119 6.8.1.1
			continue
		}
		if err := checkContinuations(b[off : off+n]); err != nil {
			return err
		}
		off += n
		if e.name == "." && e.size > maxStructure {
			return fmt.Errorf("%w: directory at block %d claims %d bytes", ErrCorrupt, d.extent, e.size)
		}
		if e.dir && e.name != "." && e.name != ".." && depth < isoMaxDepth {
			if err := walkISODir(r, e, depth+1, dirs); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkContinuations bounds the Rock Ridge continuation areas (SUSP 5.1,
// "CE" entries) of one directory record's system use area.
func checkContinuations(rec []byte) error {
	nameLen := int(rec[32])
	su := 33 + nameLen + (nameLen+1)%2 // the name is padded to an even offset
	for su+4 <= len(rec) {
		sig, n := string(rec[su:su+2]), int(rec[su+2])
		if n < 4 || su+n > len(rec) {
			return nil // not SUSP, or padding: nothing go-diskfs will follow
		}
		if sig == "CE" && n >= 28 {
			// Block (4), offset (12) and length (20), both-endian.
			if l := binary.LittleEndian.Uint32(rec[su+20 : su+24]); l > maxStructure {
				return fmt.Errorf("%w: Rock Ridge continuation of %d bytes", ErrCorrupt, l)
			}
		}
		su += n
	}
	return nil
}

// preflightFAT rejects a FAT whose cluster chains loop: go-diskfs would
// follow one forever, growing a slice until memory runs out.
func preflightFAT(r io.ReaderAt, b fatBPB) error {
	clusters := (uint64(b.totalSectors) - uint64(b.reserved) - uint64(b.numFATs)*uint64(b.fatSize) -
		uint64((b.rootEntries*32+b.bytesPerSector-1)/b.bytesPerSector)) / uint64(b.sectorsPerCluster)
	if clusters > fatMaxClusters {
		return fmt.Errorf("FAT of %d clusters is too large for a config drive", clusters)
	}
	// The table is read whole: bound it before allocating it.
	size := uint64(b.fatSize) * uint64(b.bytesPerSector)
	if size > fatMaxClusters*4 {
		return fmt.Errorf("%w: FAT of %d bytes", ErrCorrupt, size)
	}
	table := make([]byte, size)
	if err := readFull(r, table, int64(b.reserved)*int64(b.bytesPerSector)); err != nil {
		return fmt.Errorf("read FAT: %w", err)
	}
	last := uint32(clusters) + 1 // clusters are numbered from 2
	next := func(c uint32) uint32 {
		switch b.bits {
		case 12:
			o := int(c) * 3 / 2
			if o+1 >= len(table) {
				return 0
			}
			v := uint32(binary.LittleEndian.Uint16(table[o:]))
			if c%2 == 1 {
				return v >> 4
			}
			return v & 0xFFF
		case 16:
			if int(c)*2+2 > len(table) {
				return 0
			}
			return uint32(binary.LittleEndian.Uint16(table[c*2:]))
		default:
			if int(c)*4+4 > len(table) {
				return 0
			}
			return binary.LittleEndian.Uint32(table[c*4:]) & 0x0FFFFFFF
		}
	}
	// Each cluster has one successor: a chain loops when a walk meets a
	// cluster of its own walk (white, grey, black marking).
	const (
		unseen = iota
		onWalk
		done
	)
	state := make([]uint8, last+1)
	var walk []uint32
	for start := uint32(2); start <= last; start++ {
		walk = walk[:0]
		c := start
		for c >= 2 && c <= last && state[c] == unseen {
			state[c] = onWalk
			walk = append(walk, c)
			c = next(c)
		}
		if c >= 2 && c <= last && state[c] == onWalk {
			return fmt.Errorf("%w: FAT cluster chain loops at cluster %d", ErrCorrupt, c)
		}
		for _, w := range walk {
			state[w] = done
		}
	}
	return nil
}
