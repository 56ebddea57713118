package configdrive

import (
	"context"
	"testing"
)

// BenchmarkLoad times Load on the DigitalOcean layout, one benchmark per
// kind of drive: the baseline for the keys command's benchmark.
//
//	go test -run '^$' -bench Load -benchmem ./configdrive
func BenchmarkLoad(b *testing.B) {
	for _, k := range imageKinds {
		b.Run(k.name, func(b *testing.B) {
			img := buildImage(b, k, doLayout, k.label)
			o := Options{Drive: img, RunDir: b.TempDir()}
			for b.Loop() {
				md, err := Load(context.Background(), o)
				if err != nil {
					b.Fatal(err)
				}
				if len(md.PublicKeys) != 2 {
					b.Fatalf("%d keys, want 2", len(md.PublicKeys))
				}
			}
		})
	}
}

// BenchmarkParse times Parse alone on the DigitalOcean layout's files.
func BenchmarkParse(b *testing.B) {
	f := wantFiles(b, doLayout, "latest", "", FSISO9660)
	for b.Loop() {
		if _, err := Parse(f); err != nil {
			b.Fatal(err)
		}
	}
}
