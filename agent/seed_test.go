package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/internal/netnstest"
)

func TestRandPoolInfo(t *testing.T) {
	seed := []byte{0xde, 0xad, 0xbe, 0xef, 0x01}
	got := randPoolInfo(seed, 40)
	want := make([]byte, 13)
	binary.NativeEndian.PutUint32(want[0:], 40) // entropy_count, bits
	binary.NativeEndian.PutUint32(want[4:], 5)  // buf_size, bytes
	copy(want[8:], seed)
	if !bytes.Equal(got, want) {
		t.Errorf("randPoolInfo = % x, want % x", got, want)
	}
	if binary.LittleEndian.Uint32([]byte{1, 0, 0, 0}) == binary.NativeEndian.Uint32([]byte{1, 0, 0, 0}) {
		// On little-endian machines (amd64, arm64) the header reads 28 00 00 00 05 00 00 00.
		if !bytes.Equal(got[:8], []byte{0x28, 0, 0, 0, 5, 0, 0, 0}) {
			t.Errorf("header = % x, want 28 00 00 00 05 00 00 00", got[:8])
		}
	}
}

type fakeEntropy struct {
	seed []byte
	bits int
	err  error
}

func (f *fakeEntropy) AddEntropy(seed []byte, bits int) error {
	f.seed, f.bits = append([]byte(nil), seed...), bits
	return f.err
}

func TestSeedKernel(t *testing.T) {
	big := bytes.Repeat([]byte{7}, maxSeed+100)
	tests := []struct {
		name     string
		seed     []byte
		err      error
		wantN    int
		wantBits int
	}{
		{"nova's 512 bytes", bytes.Repeat([]byte{1}, 512), nil, 512, 4096},
		{"capped", big, nil, maxSeed, 8 * maxSeed},
		{"refused", []byte{1, 2}, errors.New("ioctl RNDADDENTROPY: operation not permitted"), 0, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEntropy{err: tt.err}
			n, err := seedKernel(f, tt.seed)
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
			if n != tt.wantN || f.bits != tt.wantBits {
				t.Errorf("n = %d, bits = %d; want %d, %d", n, f.bits, tt.wantN, tt.wantBits)
			}
		})
	}
}

func TestEntropyAvail(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "entropy_avail")
	os.WriteFile(p, []byte("256\n"), 0o644)
	if got := entropyAvail(p); got != 256 {
		t.Errorf("entropyAvail = %d, want 256", got)
	}
	os.WriteFile(p, []byte("lots"), 0o644)
	if got := entropyAvail(p); got != -1 {
		t.Errorf("entropyAvail(garbage) = %d, want -1", got)
	}
	if diff := cmp.Diff(-1, entropyAvail(filepath.Join(dir, "absent"))); diff != "" {
		t.Error(diff)
	}
}

// TestURandomAddEntropy makes the real ioctl, as root (CAP_SYS_ADMIN). The
// bytes come from crypto/rand, so what is credited is real entropy.
func TestURandomAddEntropy(t *testing.T) {
	netnstest.Tier1(t)
	seed := make([]byte, 64)
	rand.Read(seed)
	if err := (URandom{Path: "/dev/urandom"}).AddEntropy(seed, 8*len(seed)); err != nil {
		t.Fatalf("AddEntropy: %v", err)
	}
	// A node that is not a random device refuses the ioctl.
	p := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(p, nil, 0o600)
	if err := (URandom{Path: p}).AddEntropy(seed, 8); err == nil {
		t.Errorf("AddEntropy on a plain file succeeded")
	}
}

// random_seed is credited once per boot: a rerun finds the marker under
// /run and leaves the pool alone.
func TestSeedOncePerBoot(t *testing.T) {
	root := t.TempDir()
	md := &configdrive.Metadata{InstanceID: "i-1", RandomSeed: bytes.Repeat([]byte{9}, 512)}
	f := &fakeEntropy{}
	rec := &Record{}
	if err := seedOnce(rec, root, md, f); err != nil {
		t.Fatal(err)
	}
	if f.bits != 4096 || rec.skipped || rec.facts["seed_bytes"] != "512" {
		t.Errorf("first: bits %d, skipped %v, facts %v", f.bits, rec.skipped, rec.facts)
	}
	f2 := &fakeEntropy{}
	rec = &Record{}
	if err := seedOnce(rec, root, md, f2); err != nil {
		t.Fatal(err)
	}
	if f2.seed != nil || !rec.skipped || rec.summary != "random_seed already credited since boot (/run/notos-agent/random-seed.credited)" {
		t.Errorf("second: credited %d bytes, summary %q", len(f2.seed), rec.summary)
	}

	// A refused ioctl leaves no marker: the next run tries again.
	root = t.TempDir()
	if err := seedOnce(&Record{}, root, md, &fakeEntropy{err: errors.New("ioctl RNDADDENTROPY: operation not permitted")}); err == nil {
		t.Fatal("no error from a refused ioctl")
	}
	if _, err := os.Stat(filepath.Join(root, SeedMarker)); !os.IsNotExist(err) {
		t.Errorf("marker written after a failure: %v", err)
	}
}
