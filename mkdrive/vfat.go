package mkdrive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// minVFATSize is the smallest FAT32 volume go-diskfs lays out with at least
// 65525 clusters (it uses 512-byte clusters up to 260 MiB): with fewer,
// the FAT type by the Microsoft spec is FAT16 and fsck.fat warns that "this
// may lead to problems on some systems". The file is sparse: it takes
// about half a MiB on disk.
const minVFATSize = 33 << 20

const fatSector = 512

// vfatSize is the volume size for files: the minimum, or room for every
// file and directory in whole clusters twice over when that is more.
func vfatSize(files map[string][]byte) int64 {
	var need int64
	for _, b := range files {
		need += (int64(len(b))/fatSector + 1) * fatSector
	}
	size := int64(minVFATSize)
	if 2*need+minVFATSize/2 > size {
		size = (2*need + minVFATSize/2 + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return size
}

// writeVFAT writes files to f as FAT32 labelled CONFIG-2, in the boot
// sector and in the root directory's volume-label entry (blkid reads both).
func writeVFAT(f *os.File, files map[string][]byte) error {
	if err := createFAT32(f, files); err != nil {
		return err
	}
	return fixFAT32(f)
}

// createFAT32 is go-diskfs's part of writeVFAT.
func createFAT32(f *os.File, files map[string][]byte) error {
	size := vfatSize(files)
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("size %s to %d bytes: %w", f.Name(), size, err)
	}
	fsys, err := fat32.Create(file.New(f, false), size, 0, fatSector, VFATLabel, false)
	if err != nil {
		return fmt.Errorf("create fat32 filesystem: %w", err)
	}
	return populate(fsys, files)
}

// fat32Layout is what the boot sector says about where things are.
type fat32Layout struct {
	bytesPerSector    int64
	sectorsPerCluster int64
	reserved          int64
	fats              int64
	fatSectors        int64
	rootCluster       uint32
	fsInfoSector      int64
	backupBootSector  int64  // 0: none
	clusters          uint32 // data clusters: valid numbers are 2..clusters+1
}

func (l fat32Layout) clusterOffset(c uint32) int64 {
	return (l.reserved + l.fats*l.fatSectors + int64(c-2)*l.sectorsPerCluster) * l.bytesPerSector
}

func (l fat32Layout) clusterBytes() int64 { return l.sectorsPerCluster * l.bytesPerSector }

// FAT32 entry values (Microsoft FAT spec, "FAT Data Structure").
const (
	fatMask = 0x0fffffff
	fatEOC  = 0x0ffffff8 // this and above: end of chain
)

// fixFAT32 mends three things go-diskfs v1.9.4's FAT32 writer gets wrong,
// each reported by fsck.fat:
//   - ".." in a directory whose parent is the root must hold cluster 0, not
//     the root's cluster (FAT spec, "FAT Directory Structure").
//   - an empty file must have first cluster 0 and no chain; go-diskfs
//     gives it one cluster.
//   - FSInfo's free count and next-free hint are left "unknown".
func fixFAT32(f *os.File) error {
	boot := make([]byte, fatSector)
	if _, err := f.ReadAt(boot, 0); err != nil {
		return fmt.Errorf("read boot sector: %w", err)
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(boot[o:])) }
	l := fat32Layout{
		bytesPerSector:    le16(11),
		sectorsPerCluster: int64(boot[13]),
		reserved:          le16(14),
		fats:              int64(boot[16]),
		fatSectors:        int64(binary.LittleEndian.Uint32(boot[36:])),
		rootCluster:       binary.LittleEndian.Uint32(boot[44:]),
		fsInfoSector:      le16(48),
		backupBootSector:  le16(50),
	}
	total := int64(binary.LittleEndian.Uint32(boot[32:]))
	// FAT32 has BPB_FATSz16 0 and the FAT size in BPB_FATSz32.
	if l.bytesPerSector == 0 || l.sectorsPerCluster == 0 || l.fatSectors == 0 || le16(22) != 0 || boot[510] != 0x55 || boot[511] != 0xaa {
		return errors.New("read boot sector: not a FAT32 boot sector")
	}
	l.clusters = uint32((total - l.reserved - l.fats*l.fatSectors) / l.sectorsPerCluster)

	fatBytes := make([]byte, l.fatSectors*l.bytesPerSector)
	if _, err := f.ReadAt(fatBytes, l.reserved*l.bytesPerSector); err != nil {
		return fmt.Errorf("read FAT: %w", err)
	}
	fat := make([]uint32, len(fatBytes)/4)
	for i := range fat {
		fat[i] = binary.LittleEndian.Uint32(fatBytes[4*i:])
	}
	m := &fatMender{f: f, l: l, fat: fat}
	if err := m.dir(l.rootCluster, false, 0); err != nil {
		return err
	}
	for i, v := range m.fat {
		binary.LittleEndian.PutUint32(fatBytes[4*i:], v)
	}
	for n := int64(0); n < l.fats; n++ {
		if _, err := f.WriteAt(fatBytes, (l.reserved+n*l.fatSectors)*l.bytesPerSector); err != nil {
			return fmt.Errorf("write FAT %d: %w", n+1, err)
		}
	}
	return m.writeFSInfo()
}

type fatMender struct {
	f   *os.File
	l   fat32Layout
	fat []uint32
}

// chain returns the clusters of the chain starting at c.
func (m *fatMender) chain(c uint32) ([]uint32, error) {
	var cs []uint32
	for c >= 2 && c < fatEOC {
		if c > m.l.clusters+1 || int(c) >= len(m.fat) || len(cs) > len(m.fat) {
			return nil, fmt.Errorf("cluster chain through %d leaves the volume or loops", c)
		}
		cs = append(cs, c)
		c = m.fat[c] & fatMask
	}
	return cs, nil
}

// dir mends the directory whose chain starts at c; parentIsRoot says
// whether its ".." must name the root (cluster 0).
func (m *fatMender) dir(c uint32, parentIsRoot bool, depth int) error {
	if depth > 64 {
		return fmt.Errorf("directory at cluster %d: tree deeper than 64", c)
	}
	cs, err := m.chain(c)
	if err != nil {
		return fmt.Errorf("directory at cluster %d: %w", c, err)
	}
	cb := m.l.clusterBytes()
	b := make([]byte, int64(len(cs))*cb)
	for i, cl := range cs {
		if _, err := m.f.ReadAt(b[int64(i)*cb:int64(i+1)*cb], m.l.clusterOffset(cl)); err != nil {
			return fmt.Errorf("read directory cluster %d: %w", cl, err)
		}
	}
	changed := false
	var subdirs []uint32
	for o := 0; o+32 <= len(b); o += 32 {
		e := b[o : o+32]
		if e[0] == 0x00 {
			break // no more entries
		}
		attr := e[11]
		if e[0] == 0xe5 || attr&0x0f == 0x0f || attr&0x08 != 0 {
			continue // deleted, long-name part, or volume label
		}
		first := uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))
		switch name := string(e[0:11]); {
		case name == ".          ":
		case name == "..         ":
			if parentIsRoot && first != 0 {
				setFirstCluster(e, 0)
				changed = true
			}
		case attr&0x10 != 0:
			subdirs = append(subdirs, first)
		case binary.LittleEndian.Uint32(e[28:]) == 0 && first != 0:
			chain, err := m.chain(first)
			if err != nil {
				return fmt.Errorf("empty file %q: %w", name, err)
			}
			for _, cl := range chain {
				m.fat[cl] &^= fatMask // free it; the top 4 bits are reserved
			}
			setFirstCluster(e, 0)
			changed = true
		}
	}
	if changed {
		for i, cl := range cs {
			if _, err := m.f.WriteAt(b[int64(i)*cb:int64(i+1)*cb], m.l.clusterOffset(cl)); err != nil {
				return fmt.Errorf("write directory cluster %d: %w", cl, err)
			}
		}
	}
	for _, s := range subdirs {
		if err := m.dir(s, c == m.l.rootCluster, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func setFirstCluster(e []byte, c uint32) {
	binary.LittleEndian.PutUint16(e[20:], uint16(c>>16))
	binary.LittleEndian.PutUint16(e[26:], uint16(c))
}

// FSInfo sector signatures (FAT spec, "FSInfo Sector Structure").
const (
	fsInfoLead   = 0x41615252
	fsInfoStruct = 0x61417272
)

// writeFSInfo records the free cluster count and the first free cluster in
// the FSInfo sector and in its backup, when there is one.
func (m *fatMender) writeFSInfo() error {
	free, next := uint32(0), uint32(0xffffffff)
	for c := uint32(2); c <= m.l.clusters+1 && int(c) < len(m.fat); c++ {
		if m.fat[c]&fatMask == 0 {
			free++
			if next == 0xffffffff {
				next = c
			}
		}
	}
	sectors := []int64{m.l.fsInfoSector}
	if m.l.backupBootSector != 0 {
		// The backup FSInfo follows the backup boot sector as the
		// primary follows the boot sector.
		sectors = append(sectors, m.l.backupBootSector+m.l.fsInfoSector)
	}
	for _, s := range sectors {
		b := make([]byte, m.l.bytesPerSector)
		off := s * m.l.bytesPerSector
		if _, err := m.f.ReadAt(b, off); err != nil {
			return fmt.Errorf("read FSInfo sector %d: %w", s, err)
		}
		if binary.LittleEndian.Uint32(b[0:]) != fsInfoLead || binary.LittleEndian.Uint32(b[484:]) != fsInfoStruct {
			if s == m.l.fsInfoSector {
				return fmt.Errorf("read FSInfo sector %d: bad signature", s)
			}
			continue // no backup written
		}
		binary.LittleEndian.PutUint32(b[488:], free)
		binary.LittleEndian.PutUint32(b[492:], next)
		if _, err := m.f.WriteAt(b, off); err != nil {
			return fmt.Errorf("write FSInfo sector %d: %w", s, err)
		}
	}
	return nil
}
