package netcfg

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/internal/netnstest"
	"github.com/notos-agent/notos-agent/internal/testenv"
	"golang.org/x/sys/unix"
)

var testDNS = DNS{
	Servers: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")},
	Domain:  "example.org",
	Search:  []string{"corp.example.org", "example.org."},
}

func TestResolvConfContent(t *testing.T) {
	tests := []struct {
		name      string
		in        DNS
		want      string
		wantWarns int
	}{{
		name: "domain first, search without repeats",
		in:   testDNS,
		want: ResolvConfMarker + "; replaced at every boot\n" +
			"search example.org corp.example.org\n" +
			"nameserver 192.0.2.53\nnameserver 2001:db8::53\n",
	}, {
		name: "unsafe names left out",
		in: DNS{
			Servers: []netip.Addr{netip.MustParseAddr("192.0.2.53")},
			Domain:  "evil.example\nnameserver 203.0.113.66",
			Search:  []string{"a b", "ok.example", "semi;colon", "-bad.example"},
		},
		want: ResolvConfMarker + "; replaced at every boot\n" +
			"search ok.example\n" +
			"nameserver 192.0.2.53\n",
		wantWarns: 4,
	}, {
		name: "servers only",
		in:   DNS{Servers: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}},
		want: ResolvConfMarker + "; replaced at every boot\nnameserver fe80::1%eth0\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns := ResolvConfContent(tt.in)
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
			if len(warns) != tt.wantWarns {
				t.Errorf("warnings = %q, want %d", warns, tt.wantWarns)
			}
		})
	}
}

func TestValidDNSName(t *testing.T) {
	for name, want := range map[string]bool{
		"example.org":                      true,
		"example.org.":                     true,
		"test_instance-kubevirt.foo.cloud": true,
		"a":                                true,
		"":                                 false,
		".":                                false,
		"a..b":                             false,
		"-a.b":                             false,
		"a-.b":                             false,
		"a b":                              false,
		"a\nb":                             false,
		"a;b":                              false,
		"a\x00":                            false,
		strings.Repeat("a", 64):            false,
		strings.Repeat("a.", 127) + "a":    false, // 255 bytes
	} {
		if got := ValidDNSName(name); got != want {
			t.Errorf("ValidDNSName(%q) = %v, want %v", name, got, want)
		}
	}
}

// resolvRoot makes a root with etc/resolv.conf holding content ("" for
// none) and returns the root and the file's path.
func resolvRoot(t *testing.T, content string) (root, path string) {
	t.Helper()
	root = t.TempDir()
	path = filepath.Join(root, "etc", "resolv.conf")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if content != "" {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUpdateResolvConfKeepsOriginalOnce replaces a file notos-agent did not
// write, rewrites it, and checks the original is kept once, never
// overwritten, even when another program rewrites resolv.conf in between.
func TestUpdateResolvConfKeepsOriginalOnce(t *testing.T) {
	ctx := context.Background()
	const original = "# from the image\nnameserver 9.9.9.9\n"
	root, path := resolvRoot(t, original)
	orig := path + ".notos-orig"
	want, _ := ResolvConfContent(testDNS)

	steps := []struct {
		name   string
		before func()
		dns    DNS
		want   ResolvConfOutcome
	}{
		{name: "first write", dns: testDNS, want: ResolvConfWritten},
		{name: "same again", dns: testDNS, want: ResolvConfUnchanged},
		{name: "another program rewrote it", before: func() {
			if err := os.WriteFile(path, []byte("nameserver 8.8.8.8\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, dns: testDNS, want: ResolvConfWritten},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		got, warns, err := UpdateResolvConf(ctx, s.dns, ResolvConfOptions{Root: root})
		if err != nil || got != s.want || len(warns) != 0 {
			t.Fatalf("%s: UpdateResolvConf = %q, %q, %v; want %q", s.name, got, warns, err, s.want)
		}
		if diff := cmp.Diff(string(want), readFile(t, path)); diff != "" {
			t.Errorf("%s: resolv.conf (-want +got):\n%s", s.name, diff)
		}
		if got := readFile(t, orig); got != original {
			t.Errorf("%s: resolv.conf.notos-orig = %q, want the first original %q", s.name, got, original)
		}
	}
}

func TestUpdateResolvConfLeavesAlone(t *testing.T) {
	ctx := context.Background()
	const original = "nameserver 9.9.9.9\n"
	tests := []struct {
		name string
		dns  DNS
		mode ResolvConfMode
		want ResolvConfOutcome
	}{
		{"skip mode", testDNS, ResolvConfSkip, ResolvConfSkipped},
		{"no DNS offered", DNS{Search: []string{"example.org"}}, "", ResolvConfNoDNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, path := resolvRoot(t, original)
			got, _, err := UpdateResolvConf(ctx, tt.dns, ResolvConfOptions{Root: root, Mode: tt.mode})
			if err != nil || got != tt.want {
				t.Fatalf("UpdateResolvConf = %q, %v; want %q", got, err, tt.want)
			}
			if got := readFile(t, path); got != original {
				t.Errorf("resolv.conf = %q, want it untouched", got)
			}
			if _, err := os.Lstat(path + ".notos-orig"); err == nil {
				t.Error("resolv.conf.notos-orig written")
			}
		})
	}
}

func TestUpdateResolvConfNew(t *testing.T) {
	root, path := resolvRoot(t, "")
	got, _, err := UpdateResolvConf(context.Background(), testDNS, ResolvConfOptions{Root: root})
	if err != nil || got != ResolvConfWritten {
		t.Fatalf("UpdateResolvConf = %q, %v; want written", got, err)
	}
	if !strings.HasPrefix(readFile(t, path), ResolvConfMarker) {
		t.Errorf("resolv.conf does not start with the marker")
	}
	if _, err := os.Lstat(path + ".notos-orig"); err == nil {
		t.Error("resolv.conf.notos-orig written with no original")
	}
}

// symlinkRoot makes etc/resolv.conf a link to a systemd-resolved-like
// file, and returns the root, the link and its target.
func symlinkRoot(t *testing.T) (root, path, target string) {
	t.Helper()
	root, path = resolvRoot(t, "")
	target = filepath.Join(root, "run", "resolved.conf")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	return root, path, target
}

func TestUpdateResolvConfSymlink(t *testing.T) {
	ctx := context.Background()
	t.Run("no resolvconf program", func(t *testing.T) {
		root, path, target := symlinkRoot(t)
		got, warns, err := UpdateResolvConf(ctx, testDNS, ResolvConfOptions{Root: root})
		if err != nil || got != ResolvConfLinkLeft || len(warns) != 1 || !strings.Contains(warns[0], "symbolic link") {
			t.Fatalf("UpdateResolvConf = %q, %q, %v; want %q and a warning", got, warns, err, ResolvConfLinkLeft)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("resolv.conf is no longer a link: %v %v", fi, err)
		}
		if got := readFile(t, target); got != "nameserver 127.0.0.53\n" {
			t.Errorf("link target written through: %q", got)
		}
	})
	t.Run("resolvconf program", func(t *testing.T) {
		sh := testenv.RequireCommands(t, "sh")["sh"]
		root, _, target := symlinkRoot(t)
		dir := t.TempDir()
		record := filepath.Join(dir, "record")
		prog := filepath.Join(dir, "resolvconf")
		// Records its arguments and standard input, as resolvconf reads them.
		script := "#!" + sh + "\necho \"$@\" > " + record + "\ncat >> " + record + "\n"
		if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		got, _, err := UpdateResolvConf(ctx, testDNS, ResolvConfOptions{Root: root, Program: prog, Name: "eth0"})
		if err != nil || got != ResolvConfHandedOver {
			t.Fatalf("UpdateResolvConf = %q, %v; want %q", got, err, ResolvConfHandedOver)
		}
		content, _ := ResolvConfContent(testDNS)
		if diff := cmp.Diff("-a eth0\n"+string(content), readFile(t, record)); diff != "" {
			t.Errorf("resolvconf got (-want +got):\n%s", diff)
		}
		if got := readFile(t, target); got != "nameserver 127.0.0.53\n" {
			t.Errorf("link target written through: %q", got)
		}
	})
	t.Run("resolvconf fails", func(t *testing.T) {
		root, _, _ := symlinkRoot(t)
		prog := testenv.RequireCommands(t, "false")["false"]
		got, _, err := UpdateResolvConf(ctx, testDNS, ResolvConfOptions{Root: root, Program: prog})
		if err == nil || got != ResolvConfFailed || !strings.Contains(err.Error(), prog+" -a notos-agent") {
			t.Fatalf("UpdateResolvConf = %q, %v; want failed with an error naming the program", got, err)
		}
	})
}

// TestUpdateResolvConfReadOnly mounts a read-only tmpfs as the root's etc
// (Tier 1: needs root) and expects a clear error, and nothing changed.
func TestUpdateResolvConfReadOnly(t *testing.T) {
	netnstest.Tier1(t)
	root, path := resolvRoot(t, "")
	etc := filepath.Dir(path)
	if err := unix.Mount("tmpfs", etc, "tmpfs", unix.MS_RDONLY, ""); err != nil {
		testenv.Unavailable(t, "mount a read-only tmpfs on %s: %v", etc, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(etc, 0); err != nil {
			t.Errorf("unmount %s: %v", etc, err)
		}
	})
	got, _, err := UpdateResolvConf(context.Background(), testDNS, ResolvConfOptions{Root: root})
	if got != ResolvConfFailed || !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), etc) {
		t.Fatalf("UpdateResolvConf = %q, %v; want failed with EROFS naming %s", got, err, etc)
	}
	if _, err := os.Lstat(path); err == nil {
		t.Errorf("%s exists on a read-only file system", path)
	}
}

// FuzzResolvConfContent checks that no name, however crafted, adds a line
// of its own to resolv.conf: the output is the marker, at most one search
// line of valid names, and one nameserver line per server.
func FuzzResolvConfContent(f *testing.F) {
	f.Add("example.org", "corp.example.org a.b")
	f.Add("x\nnameserver 6.6.6.6", "a;b c\x00d")
	f.Fuzz(func(t *testing.T, domain, search string) {
		d := DNS{Servers: testDNS.Servers, Domain: domain, Search: strings.Split(search, " ")}
		body, _ := ResolvConfContent(d)
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		if !strings.HasPrefix(lines[0], ResolvConfMarker) {
			t.Fatalf("first line %q", lines[0])
		}
		rest := lines[1:]
		if len(rest) > 0 && strings.HasPrefix(rest[0], "search ") {
			for _, n := range strings.Fields(strings.TrimPrefix(rest[0], "search ")) {
				if !ValidDNSName(n) {
					t.Errorf("search line holds %q", n)
				}
			}
			rest = rest[1:]
		}
		if len(rest) != len(d.Servers) {
			t.Fatalf("lines after search: %q, want %d nameserver lines", rest, len(d.Servers))
		}
		for i, l := range rest {
			if l != "nameserver "+d.Servers[i].String() {
				t.Errorf("line %q, want nameserver %s", l, d.Servers[i])
			}
		}
	})
}
