package kmod

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseDep: no input panics parseDep, and what it accepts is
// consistent: every entry is keyed by its own file's module name and
// lists only module files.
func FuzzParseDep(f *testing.F) {
	f.Add([]byte("kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\nkernel/net/core/failover.ko:\n"))
	f.Add([]byte("# c\n\na.ko.xz: b.ko.zst c.ko.gz\n/abs/d-e.ko:\n"))
	f.Add([]byte("a.ko: ../b.ko\n"))
	f.Add([]byte(":\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		deps, err := parseDep(data, "modules.dep")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "modules.dep line ") {
				t.Fatalf("error %q does not name the file and line", err)
			}
			return
		}
		for name, e := range deps {
			if got, err := moduleName(e.path); err != nil || got != name {
				t.Fatalf("entry %q has path %q (%q, %v)", name, e.path, got, err)
			}
			for _, d := range e.deps {
				if _, err := moduleName(d); err != nil {
					t.Fatalf("entry %q lists %q: %v", name, d, err)
				}
			}
		}
	})
}

// FuzzParseIndexes: no input panics the other index parsers, the
// modprobe.d parser or the kernel command line parser.
func FuzzParseIndexes(f *testing.F) {
	f.Add([]byte("alias fs-iso9660 isofs\nalias virtio:d00000001v* virtio_net\n"))
	f.Add([]byte("softdep a pre: b post: c\nsoftdep x y\n"))
	f.Add([]byte("kernel/net/packet/af_packet.ko\n"))
	f.Add([]byte("af_packet.alias=net-pf-17\x00x.license=GPL\x00.alias=\x00"))
	f.Add([]byte("isofs 53248 0 - Live 0x0\n"))
	f.Add([]byte("options a b=1 \\\n c=2\nblacklist x\n"))
	f.Add([]byte(`root=/dev/vda isofs.map="a b" modprobe.blacklist=a,b`))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseAlias(data, "modules.alias")
		parseBuiltin(data, "modules.builtin")
		parseSoftdep(data, "modules.softdep")
		for _, a := range parseBuiltinModinfo(data) {
			if a.module == "" || a.pattern == "" {
				t.Fatalf("empty alias entry %+v", a)
			}
		}
		parseProcModules(data)
		cfg := &config{options: map[string]string{}, softdep: map[string]softdep{}, blacklist: map[string]bool{}}
		cfg.parse(data, "x.conf")
		cfg.parseCmdline(string(data))
	})
}

// FuzzFnmatch: fnmatch never panics, and agrees with path.Match on the
// patterns both understand the same way: ASCII (fnmatch's '?' is one byte,
// as in the C locale; path.Match's is one rune) without '/', '[', '\'.
func FuzzFnmatch(f *testing.F) {
	f.Add("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	f.Add("a*b?c", "aXXbYc")
	f.Add("x[!0-9]", "xa")
	f.Add("[", "[")
	f.Add(`\`, `\`)
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := fnmatch(pattern, name)
		if strings.ContainsAny(pattern+name, `/[\`) || !isASCII(pattern+name) {
			return
		}
		want, err := path.Match(pattern, name)
		if err == nil && got != want {
			t.Fatalf("fnmatch(%q, %q) = %v, path.Match says %v", pattern, name, got, want)
		}
	})
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzReadImage: no file panics the decompressors or makes them return
// more than MaxImageSize.
func FuzzReadImage(f *testing.F) {
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0x00, 0, 1})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0})
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Add([]byte("\x7fELF"))
	f.Add(xzOf(f, []byte("\x7fELF module"), "--check=crc32", "--lzma2=dict=1MiB"))
	f.Add(xzOf(f, fakeImage("many"), "--block-size=1KiB"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "m.ko.xz")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		img, _, err := readImage(file, p)
		if err == nil && len(img) > MaxImageSize {
			t.Fatalf("image of %d bytes", len(img))
		}
	})
}
