package kmod

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// BenchmarkReadImage decompresses Debian's xfs.ko (4 MiB, its largest
// module) as the userspace fallback does.
func BenchmarkReadImage(b *testing.B) {
	k := fetchedKernel(b)
	img, err := os.ReadFile(filepath.Join(k.ModulesDir, "kernel/fs/xfs/xfs.ko"))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"xz", []string{"xz", "-c", "--check=crc32", "--lzma2=dict=1MiB"}},
		{"zstd", []string{"zstd", "-c", "-q", "-19"}},
		{"gzip", []string{"gzip", "-c", "-9"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			tool := testenv.RequireCommands(b, c.args[0])[c.args[0]]
			p := filepath.Join(b.TempDir(), "xfs.ko."+c.name)
			out, err := os.Create(p)
			if err != nil {
				b.Fatal(err)
			}
			cmd := exec.Command(tool, c.args[1:]...)
			cmd.Stdin, cmd.Stdout = bytes.NewReader(img), out
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			out.Close()
			b.SetBytes(int64(len(img)))
			for b.Loop() {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				got, _, err := readImage(f, p)
				f.Close()
				if err != nil || len(got) != len(img) {
					b.Fatalf("readImage: %d bytes, %v", len(got), err)
				}
			}
		})
	}
}
