package kmod

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// xzOf compresses data with the real xz and args.
func xzOf(t testing.TB, data []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testenv.RequireCommands(t, "xz")["xz"], append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %v: %v", args, err)
	}
	return out
}

// TestReadImageXZ decodes xz files of every shape the format allows and
// refuses, before decoding, blocks that ask for too large a dictionary.
func TestReadImageXZ(t *testing.T) {
	img := fakeImage("xzmod")
	other := fakeImage("other")
	single := xzOf(t, img, "--check=crc32", "--lzma2=dict=1MiB")
	// The dictionary size code sits in the first block header: stream
	// header (12 bytes), header size, flags, filter id 0x21, props size 1.
	if !bytes.Equal(single[13:16], []byte{0, 0x21, 1}) {
		t.Fatalf("unexpected block header % x", single[12:20])
	}
	withDict := func(code byte) []byte {
		b := bytes.Clone(single)
		b[16] = code
		return b
	}
	tests := []struct {
		name    string
		file    []byte
		want    []byte
		wantErr error
	}{
		{"one block, crc32", single, img, nil},
		{"one block, sha256", xzOf(t, img, "--check=sha256"), img, nil},
		{"many blocks", xzOf(t, img, "--block-size=4KiB"), img, nil},
		{"two streams and padding", append(append(xzOf(t, img), 0, 0, 0, 0), xzOf(t, other)...), append(bytes.Clone(img), other...), nil},
		{"dictionary of 4 GiB", withDict(40), nil, ErrTooLarge},
		{"dictionary of 96 MiB (3 << 25)", withDict(29), nil, ErrTooLarge},
		{"dictionary code out of range", withDict(41), nil, errXZ},
		{"truncated", single[:len(single)-5], nil, errXZ},
		{"index claims more than the file", func() []byte { b := bytes.Clone(single); b[len(b)-8] = 0xff; return b }(), nil, errXZ},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "m.ko.xz")
			if err := os.WriteFile(p, tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, _, err := readImage(f, p)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("readImage: error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readImage: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("readImage: %d bytes, not the %d bytes compressed", len(got), len(tt.want))
			}
		})
	}
}
