package kmod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// TestLoadCompressed loads real xz, zstd and gzip files made by the real
// tools. The fake kernel accepts only the original image, byte for byte, so
// a module loads only if it was decompressed exactly.
func TestLoadCompressed(t *testing.T) {
	formats := []struct {
		name, ext, tool string
		args            []string
	}{
		{"xz crc32 (as kmod's build makes them)", ".xz", "xz", []string{"-c", "--check=crc32"}},
		{"xz crc64", ".xz", "xz", []string{"-c", "--check=crc64"}},
		{"zstd", ".zst", "zstd", []string{"-c", "-q"}},
		{"gzip", ".gz", "gzip", []string{"-c", "-n"}},
	}
	for _, f := range formats {
		for _, kernelDecompresses := range []bool{false, true} {
			name := f.name + ", userspace"
			wantVia := "init_module, " + map[string]string{".xz": "xz", ".zst": "zstd", ".gz": "gzip"}[f.ext] + " decompressed here"
			wantCalls := []call{
				{"finit_module", "", "p=1", unix.MODULE_INIT_COMPRESSED_FILE},
				{"init_module", "cdrom", "p=1", 0},
			}
			if kernelDecompresses {
				name = f.name + ", kernel"
				wantVia = "finit_module, decompressed by the kernel"
				wantCalls = []call{{"finit_module", "cdrom", "p=1", unix.MODULE_INIT_COMPRESSED_FILE}}
			}
			t.Run(name, func(t *testing.T) {
				s := newFakeSystem(t)
				s.kernel.decompresses = kernelDecompresses
				rel := "kernel/drivers/cdrom/cdrom.ko" + f.ext
				s.index("modules.dep", rel+":\n")
				s.compressedModule(rel, f.tool, f.args...)
				results := s.loader().Load(context.Background(), "cdrom p=1")
				want := []outcome{{"cdrom", "cdrom", false, Loaded, wantVia}}
				if diff := cmp.Diff(want, outcomes(results)); diff != "" {
					t.Errorf("results (-want +got):\n%s\nerror: %v", diff, results[0].Err)
				}
				if diff := cmp.Diff(wantCalls, s.kernel.calls); diff != "" {
					t.Errorf("kernel calls (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestLoadWithoutFinit: a kernel without finit_module (before 3.8) gets
// every module, plain or compressed, through init_module.
func TestLoadWithoutFinit(t *testing.T) {
	s := newFakeSystem(t)
	s.kernel.noFinit = true
	s.index("modules.dep", "kernel/fs/isofs/isofs.ko: kernel/drivers/cdrom/cdrom.ko.gz\nkernel/drivers/cdrom/cdrom.ko.gz:\n")
	s.module("kernel/fs/isofs/isofs.ko")
	s.compressedModule("kernel/drivers/cdrom/cdrom.ko.gz", "gzip", "-c")
	results := s.loader().Load(context.Background(), "isofs")
	want := []outcome{
		{"isofs", "cdrom", true, Loaded, "init_module, gzip decompressed here"},
		{"isofs", "isofs", false, Loaded, "init_module"},
	}
	if diff := cmp.Diff(want, outcomes(results)); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	wantCalls := []call{
		{"finit_module", "", "", unix.MODULE_INIT_COMPRESSED_FILE},
		{"init_module", "cdrom", "", 0},
		{"finit_module", "", "", 0},
		{"init_module", "isofs", "", 0},
	}
	if diff := cmp.Diff(wantCalls, s.kernel.calls); diff != "" {
		t.Errorf("kernel calls (-want +got):\n%s", diff)
	}
}

// TestLoadCompressedRefused: a corrupt or foreign file is reported with
// the decoder's or the kernel's reason.
func TestLoadCompressedRefused(t *testing.T) {
	tests := []struct {
		name    string
		file    []byte
		wantErr error
		wantMsg string
	}{
		{"truncated xz", append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, make([]byte, 20)...), nil, "xz /lib/modules/6.1.0-test/m.ko.xz"},
		{"truncated zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3}, nil, "zstd /lib/modules/6.1.0-test/m.ko.xz"},
		{"bad gzip header", []byte{0x1f, 0x8b, 0xff, 0xff, 0}, nil, "gzip /lib/modules/6.1.0-test/m.ko.xz"},
		{"not compressed, not a module", []byte("hello"), unix.ENOEXEC, "init_module /lib/modules/6.1.0-test/m.ko.xz: exec format error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeSystem(t)
			s.index("modules.dep", "m.ko.xz:\n")
			s.write(s.tree+"/m.ko.xz", tt.file)
			results := s.loader().Load(context.Background(), "m")
			r := results[0]
			if r.Outcome != Failed || r.Err == nil {
				t.Fatalf("got %v, want a failure", r)
			}
			if tt.wantErr != nil && !errors.Is(r.Err, tt.wantErr) {
				t.Errorf("error %v, want errors.Is %v", r.Err, tt.wantErr)
			}
			if got := r.Err.Error(); len(got) < len(tt.wantMsg) || got[:len(tt.wantMsg)] != tt.wantMsg {
				t.Errorf("error %q, want it to start with %q", got, tt.wantMsg)
			}
		})
	}
}

// TestLoadTooLarge: files and decompressed images over MaxImageSize are
// refused before they reach the kernel.
func TestLoadTooLarge(t *testing.T) {
	s := newFakeSystem(t)
	s.index("modules.dep", "big.ko:\nbomb.ko.zst:\n")
	// A sparse file: the limit is checked from its size, nothing is read.
	big := filepath.Join(s.root, s.tree, "big.ko")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxImageSize+1); err != nil {
		t.Fatal(err)
	}
	// A small file that decompresses to more than the limit.
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	s.write(s.tree+"/bomb.ko.zst", enc.EncodeAll(make([]byte, MaxImageSize+1), nil))
	for _, r := range s.loader().Load(context.Background(), "big", "bomb") {
		if r.Outcome != Failed || !errors.Is(r.Err, ErrTooLarge) {
			t.Errorf("%s: got %v, want failed with ErrTooLarge", r.Module, r)
		}
	}
	for _, c := range s.kernel.calls {
		if c.Syscall == "init_module" || c.Module != "" {
			t.Errorf("kernel got %+v, want no image", c)
		}
	}
}
