package configdrive

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// putBoth writes v as ECMA-119's both-byte-order 32-bit number (7.3.3).
func putBoth(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b[0:4], v)
	binary.BigEndian.PutUint32(b[4:8], v)
}

// patchFile applies patch to a copy of img's bytes and writes them back.
func patchFile(t *testing.T, img string, patch func(b []byte)) {
	t.Helper()
	b := readTestFile(t, img)
	patch(b)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// descriptors calls fn with each primary or supplementary descriptor.
func descriptors(b []byte, fn func(vd []byte)) {
	for off := isoVDStart; off+isoSector <= len(b) && b[off] != isoVDEnd; off += isoSector {
		if b[off] == isoVDPrimary || b[off] == isoVDSupp {
			fn(b[off : off+isoSector])
		}
	}
}

// fatLoop makes the first cluster of the root directory's first
// subdirectory point to itself in every FAT copy: a chain with no end.
func fatLoop(t *testing.T, b []byte) {
	t.Helper()
	bpb, ok := parseFATBPB(b[:512])
	if !ok || bpb.bits != 16 {
		t.Fatal("not a FAT16 image")
	}
	root := int((bpb.reserved + bpb.numFATs*bpb.fatSize) * bpb.bytesPerSector)
	for i := root; i < root+int(bpb.rootEntries)*32; i += 32 {
		e := b[i : i+32]
		if e[0] != 0 && e[0] != 0xE5 && e[11] != fatAttrLFN && e[11]&0x10 != 0 {
			c := binary.LittleEndian.Uint16(e[26:28])
			for f := range bpb.numFATs {
				fat := int((bpb.reserved + f*bpb.fatSize) * bpb.bytesPerSector)
				binary.LittleEndian.PutUint16(b[fat+int(c)*2:], c)
			}
			return
		}
	}
	t.Fatal("no subdirectory in the root directory")
}

// allocated runs fn and returns how many bytes it allocated.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestReadFilesHugeSizes: sizes from which go-diskfs would allocate up to
// 4 GiB, or a FAT chain it would follow forever, are caught before it
// runs. With the Joliet tree intact the drive is still read.
func TestReadFilesHugeSizes(t *testing.T) {
	tests := []struct {
		name    string
		kind    imageKind
		patch   func(t *testing.T, b []byte)
		wantErr string // "" when the drive must still be read
	}{
		{
			name: "primary root directory of 4 GiB, Joliet intact",
			kind: kindRR,
			patch: func(t *testing.T, b []byte) {
				putBoth(b[isoVDStart+156+10:], 0xFFFFF800)
			},
		},
		{
			name: "primary path table of 4 GiB, Joliet intact",
			kind: kindRR,
			patch: func(t *testing.T, b []byte) {
				putBoth(b[isoVDStart+132:], 0xFFFFFF00)
			},
		},
		{
			name: "every root directory of 4 GiB",
			kind: kindRR,
			patch: func(t *testing.T, b []byte) {
				descriptors(b, func(vd []byte) { putBoth(vd[156+10:], 0xFFFFF800) })
			},
			wantErr: "corrupt filesystem",
		},
		{
			name: "a directory whose own record claims 4 GiB",
			kind: kindRockRidge,
			patch: func(t *testing.T, b []byte) {
				root := int(binary.LittleEndian.Uint32(b[isoVDStart+156+2:])) * isoSector
				putBoth(b[root+10:], 0xFFFFF800) // the "." record of the root
			},
			wantErr: "claims",
		},
		{
			name:    "FAT chain that loops",
			kind:    kindFAT16,
			patch:   fatLoop,
			wantErr: "loops",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := buildImage(t, tt.kind, doLayout, tt.kind.label)
			patchFile(t, img, func(b []byte) { tt.patch(t, b) })
			var got Files
			var err error
			n := allocated(func() { got, err = ReadFiles(context.Background(), img, ReadOptions{}) })
			if n > 64<<20 {
				t.Errorf("ReadFiles allocated %d MiB", n>>20)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ReadFiles: %v", err)
				}
				if diff := cmp.Diff(wantFiles(t, doLayout, "latest", img, tt.kind.fstype), got); diff != "" {
					t.Errorf("ReadFiles (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadFiles = %v, want ErrCorrupt saying %q", err, tt.wantErr)
			}
			t.Logf("error: %v", err)
		})
	}
}
