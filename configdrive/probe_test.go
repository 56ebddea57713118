package configdrive

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// countingReader records how far into the device Probe reads.
type countingReader struct {
	r     io.ReaderAt
	mu    sync.Mutex
	bytes int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.bytes += int64(len(p))
	c.mu.Unlock()
	return c.r.ReadAt(p, off)
}

func patched(t *testing.T, img string, patch func(b []byte)) []byte {
	t.Helper()
	b := readTestFile(t, img)
	patch(b)
	return b
}

func TestProbe(t *testing.T) {
	empty := t.TempDir()
	isoJoliet := buildImage(t, kindJoliet, empty, "config-2")
	fat12 := buildImage(t, kindFAT12, empty, "CONFIG-2")
	fat32 := buildImage(t, kindFAT32, empty, "CONFIG-2")
	fat12NoLabel := filepath.Join(t.TempDir(), "nolabel.img")
	run(t, testenv.RequireCommands(t, "mkfs.vfat")["mkfs.vfat"], "-C", "-F", "12", fat12NoLabel, "1440")

	type result struct {
		FSType, Label string
		Labels        []string
		Err           error
	}
	tests := []struct {
		name string
		data []byte
		want result
	}{
		{"iso9660 with Joliet", readTestFile(t, isoJoliet),
			result{FSISO9660, "config-2", []string{"config-2", "config-2"}, nil}},
		{"Joliet label differs from the primary one: both match, Joliet shown",
			patched(t, isoJoliet, func(b []byte) {
				copy(b[isoVDStart+40:isoVDStart+72], bytes.Repeat([]byte(" "), 32))
				copy(b[isoVDStart+40:], "CDROM")
			}),
			result{FSISO9660, "config-2", []string{"CDROM", "config-2"}, nil}},
		{"FAT12", readTestFile(t, fat12), result{FSVFAT, "CONFIG-2", []string{"CONFIG-2"}, nil}},
		{"FAT32", readTestFile(t, fat32), result{FSVFAT, "CONFIG-2", []string{"CONFIG-2"}, nil}},
		{"FAT root-directory label wins over the boot sector's",
			patched(t, fat12, func(b []byte) { copy(b[43:54], "OLDLABEL   ") }),
			result{FSVFAT, "CONFIG-2", []string{"CONFIG-2"}, nil}},
		{"FAT32 root-directory label wins over the boot sector's",
			patched(t, fat32, func(b []byte) { copy(b[71:82], "OLDLABEL   ") }),
			result{FSVFAT, "CONFIG-2", []string{"CONFIG-2"}, nil}},
		{"FAT boot-sector label when the root has none",
			patched(t, fat12NoLabel, func(b []byte) { copy(b[43:54], "config-2   ") }),
			result{FSVFAT, "config-2", []string{"config-2"}, nil}},
		{"FAT without any label", readTestFile(t, fat12NoLabel), result{FSVFAT, "", nil, nil}},
		{"empty device", nil, result{Err: ErrUnknownFS}},
		{"zeros", make([]byte, 64<<10), result{Err: ErrUnknownFS}},
		{"ISO cut inside its first descriptor", readTestFile(t, isoJoliet)[:isoVDStart+1000], result{Err: ErrUnknownFS}},
		{"boot sector of garbage", bytes.Repeat([]byte{0xEB, 0x3C, 0x90, 0xFF}, 1024), result{Err: ErrUnknownFS}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(tt.data)}
			p, err := probe(r)
			got := result{p.fstype, p.label, p.labels, err}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) })); diff != "" {
				t.Errorf("probe (-want +got):\n%s", diff)
			}
			// Probing a device must stay cheap: Find probes every one.
			if r.bytes > 128<<10 {
				t.Errorf("probe read %d bytes, want at most 128 KiB", r.bytes)
			}
			fstype, label, err := Probe(bytes.NewReader(tt.data))
			if fstype != tt.want.FSType || label != tt.want.Label || !errors.Is(err, tt.want.Err) {
				t.Errorf("Probe = %q, %q, %v; want %q, %q, %v", fstype, label, err, tt.want.FSType, tt.want.Label, tt.want.Err)
			}
		})
	}
}

// failingReader fails every read, as a device with no medium does.
type failingReader struct{ err error }

func (f failingReader) ReadAt([]byte, int64) (int, error) { return 0, f.err }

func TestProbeReadError(t *testing.T) {
	eio := errors.New("input/output error")
	if _, _, err := Probe(failingReader{eio}); !errors.Is(err, eio) {
		t.Errorf("Probe(failing device) = %v, want the read error", err)
	}
}
