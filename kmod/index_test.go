package kmod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFnmatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"fs_iso9660", "fs_iso9660", true},
		{"fs_iso9660", "fs_iso966", false},
		{"fs_iso9660", "fs_iso96600", false},
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000002v00001AF4", false},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d00001000sv00001AF4sd00000001bc02sc00i00", false},
		{"*", "", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYcZ", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"0?", "0ӟ", false}, // '?' is one byte, as fnmatch(3) in the C locale
		{"0??", "0ӟ", true},
		{"usb:v*p*d*dc*dsc*dp*ic03isc01ip01in*", "usb:v046Dp0001d0100dc00dsc00dp00ic03isc01ip01in00", true},
		{"char_major_10_[0-9]*", "char_major_10_229", true},
		{"char_major_10_[0-9]*", "char_major_10_x", false},
		{"x[!0-9]", "xa", true},
		{"x[!0-9]", "x5", false},
		{"x[^0-9]", "x5", false},
		{"x[]]", "x]", true},
		{"x[abc", "x[abc", true},
		{`x\*`, "x*", true},
		{`x\*`, "xy", false},
		{"dmi:*:svnLENOVO:*", "dmi:bvnX:svnLENOVO:pnY:", true},
		{"**a", "bbba", true},
		{"*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 200), false},
	}
	for _, tt := range tests {
		if got := fnmatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestNormalizePattern(t *testing.T) {
	tests := []struct{ in, want string }{
		{"net-pf-17", "net_pf_17"},
		{"char-major-[0-9]-*", "char_major_[0-9]_*"},
		{"virtio:d00000001v*", "virtio:d00000001v*"},
	}
	for _, tt := range tests {
		if got := normalizePattern(tt.in); got != tt.want {
			t.Errorf("normalizePattern(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseDep(t *testing.T) {
	got, err := parseDep([]byte(`# a comment
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz

kernel/net/core/failover.ko.xz:
/lib/modules/old/kernel/a-b.ko:  kernel/net/core/failover.ko.xz	
kernel/net/core/failover.ko: kernel/other.ko
`), "modules.dep")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]depEntry{
		"virtio_net": {"kernel/drivers/net/virtio_net.ko.xz", []string{"kernel/drivers/net/net_failover.ko.xz", "kernel/net/core/failover.ko.xz"}},
		"failover":   {"kernel/net/core/failover.ko.xz", nil},
		"a_b":        {"/lib/modules/old/kernel/a-b.ko", []string{"kernel/net/core/failover.ko.xz"}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(depEntry{})); diff != "" {
		t.Errorf("parseDep (-want +got):\n%s", diff)
	}
}

// TestParseMalformed: every index parser names the file and the line of
// the first bad line.
func TestParseMalformed(t *testing.T) {
	parsers := map[string]func([]byte, string) error{
		"modules.dep":     func(b []byte, f string) error { _, err := parseDep(b, f); return err },
		"modules.alias":   func(b []byte, f string) error { _, err := parseAlias(b, f); return err },
		"modules.builtin": func(b []byte, f string) error { _, err := parseBuiltin(b, f); return err },
		"modules.softdep": func(b []byte, f string) error { _, err := parseSoftdep(b, f); return err },
	}
	tests := []struct {
		file, text, want string
	}{
		{"modules.dep", "a.ko:\nb.ko c.ko\n", `modules.dep line 2: malformed line: no ':': "b.ko c.ko"`},
		{"modules.dep", "a.ko:\n\n: b.ko\n", `modules.dep line 3: malformed line: bad module path ""`},
		{"modules.dep", "a.txt: b.ko\n", `modules.dep line 1: malformed line: "a.txt" is not a .ko, .ko.xz, .ko.zst or .ko.gz file`},
		{"modules.dep", "a.ko: ../../etc/x.ko\n", `modules.dep line 1: malformed line: module path "../../etc/x.ko" leaves the tree`},
		{"modules.dep", "a.ko: .ko\n", `modules.dep line 1: malformed line: ".ko" is not a .ko`},
		{"modules.dep", "kernel/..ko:\n", `modules.dep line 1: malformed line: "kernel/..ko" is not a .ko`},
		{"modules.dep", "kernel/" + strings.Repeat("x", 100) + "\n", `modules.dep line 1: malformed line: no ':': "kernel/xxxxxxxx`},
		{"modules.alias", "alias a b\nalias only-two\n", `modules.alias line 2: malformed line: want "alias PATTERN MODULE"`},
		{"modules.alias", "options x y=1\n", `modules.alias line 1: malformed line`},
		{"modules.builtin", "kernel/a.ko\nkernel/b\n", `modules.builtin line 2: malformed line: "kernel/b" is not`},
		{"modules.softdep", "softdep\n", `modules.softdep line 1: malformed line: want "softdep MODULE`},
		{"modules.softdep", "blacklist x\n", `modules.softdep line 1: malformed line`},
	}
	for _, tt := range tests {
		err := parsers[tt.file]([]byte(tt.text), tt.file)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, ErrMalformed) {
			t.Errorf("parse %s %q: error %v, want one starting %q", tt.file, tt.text, err, tt.want)
		}
	}
}

func TestParseSoftdep(t *testing.T) {
	got, err := parseSoftdep([]byte("softdep a pre: b c post: d\nsoftdep a pre: e\nsoftdep x-y ignored post: z\n"), "modules.softdep")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]softdep{
		"a":   {pre: []string{"b", "c", "e"}, post: []string{"d"}},
		"x_y": {post: []string{"z"}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(softdep{})); diff != "" {
		t.Errorf("parseSoftdep (-want +got):\n%s", diff)
	}
}

func TestParseProcModules(t *testing.T) {
	got := parseProcModules([]byte("isofs 53248 0 - Live 0x0\ncdrom 81920 1 isofs, Live 0x0\nold-mod 1 0 - Unloading 0x0\nbare\n"))
	want := map[string]bool{"isofs": true, "cdrom": true, "bare": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseProcModules (-want +got):\n%s", diff)
	}
}

func TestReadIndexTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "modules.alias")
	if err := os.WriteFile(p, []byte("alias a b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readIndex(p, 5); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), p) {
		t.Errorf("readIndex over the limit: error %v, want ErrTooLarge naming %s", err, p)
	}
	if b, err := readIndex(p, 10); err != nil || string(b) != "alias a b\n" {
		t.Errorf("readIndex at the limit = %q, %v", b, err)
	}
}
