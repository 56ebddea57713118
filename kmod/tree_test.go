package kmod

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

func TestModulesDir(t *testing.T) {
	const rel = testRelease
	tests := []struct {
		name      string
		trees     []string // directories made under the root; "+" marks one with modules.dep
		dir       string   // Loader.Dir
		moduleDir string   // $MODULE_DIR
		want      string
		wantErr   string
	}{
		{"lib/modules", []string{"+/lib/modules/" + rel, "+/usr/lib/modules/" + rel}, "", "", "/lib/modules/" + rel, ""},
		{"usr/lib/modules when /lib/modules has no tree", []string{"/lib/modules/other", "+/usr/lib/modules/" + rel}, "", "", "/usr/lib/modules/" + rel, ""},
		{"NixOS booted system", []string{"+/run/booted-system/kernel-modules/lib/modules/" + rel}, "", "", "/run/booted-system/kernel-modules/lib/modules/" + rel, ""},
		{"$MODULE_DIR holds <release>/ (NixOS)", []string{"+/lib/modules/" + rel, "+/nix/store/k/lib/modules/" + rel}, "", "/nix/store/k/lib/modules", "/nix/store/k/lib/modules/" + rel, ""},
		{"$MODULE_DIR is the tree", []string{"+/lib/modules/" + rel, "+/nix/m"}, "", "/nix/m", "/nix/m", ""},
		{"$MODULE_DIR without a tree is passed over", []string{"/nix/empty", "+/usr/lib/modules/" + rel}, "", "/nix/empty", "/usr/lib/modules/" + rel, ""},
		{"a tree with modules.dep wins over an earlier bare one", []string{"/lib/modules/" + rel, "+/usr/lib/modules/" + rel}, "", "", "/usr/lib/modules/" + rel, ""},
		{"a bare tree when nothing better", []string{"/usr/lib/modules/" + rel}, "", "", "/usr/lib/modules/" + rel, ""},
		{"explicit dir, even without modules.dep", []string{"+/lib/modules/" + rel, "/opt/mods"}, "/opt/mods", "", "/opt/mods", ""},
		{"explicit dir missing", []string{"+/lib/modules/" + rel}, "/opt/none", "", "", "module tree: stat "},
		{"nothing", nil, "", "", "", "find module tree for " + rel + ": file does not exist: tried /lib/modules/" + rel + ", /usr/lib/modules/" + rel + ", /run/booted-system/kernel-modules/lib/modules/" + rel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeSystem(t)
			for _, d := range tt.trees {
				if p, ok := strings.CutPrefix(d, "+"); ok {
					s.write(p+"/modules.dep", nil)
				} else if err := os.MkdirAll(s.root+d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("MODULE_DIR", tt.moduleDir)
			l := s.loader()
			l.Dir = tt.dir
			got, err := l.ModulesDir()
			if got != tt.want {
				t.Errorf("ModulesDir() = %q, want %q", got, tt.want)
			}
			if gotErr := errText(err); tt.wantErr == "" && gotErr != "" || !strings.HasPrefix(gotErr, tt.wantErr) {
				t.Errorf("ModulesDir() error %q, want one starting %q", gotErr, tt.wantErr)
			}
		})
	}
}

// TestReleaseFromUname: with no Release, the tree is the running kernel's,
// as `uname -r` names it.
func TestReleaseFromUname(t *testing.T) {
	out, err := exec.Command("uname", "-r").Output()
	if err != nil {
		testenv.Unavailable(t, "uname -r: %v", err)
	}
	rel := strings.TrimSpace(string(out))
	t.Setenv("MODULE_DIR", "")
	s := newFakeSystem(t)
	s.write("/usr/lib/modules/"+rel+"/modules.dep", nil)
	got, err := (&Loader{Root: s.root}).ModulesDir()
	if want := "/usr/lib/modules/" + rel; got != want || err != nil {
		t.Errorf("ModulesDir() = %q, %v; want %q", got, err, want)
	}
}

func TestBadRelease(t *testing.T) {
	for _, rel := range []string{"../../etc", "..", "a/b"} {
		l := &Loader{Root: t.TempDir(), Release: rel}
		if _, err := l.ModulesDir(); err == nil || !strings.Contains(err.Error(), "bad kernel release") {
			t.Errorf("release %q: error %v, want bad kernel release", rel, err)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestPresent(t *testing.T) {
	want := map[Outcome]bool{0: false, Loaded: true, BuiltIn: true, AlreadyLoaded: true, WouldLoad: true, Failed: false}
	got := map[Outcome]bool{}
	for o := range want {
		got[o] = Result{Outcome: o}.Present()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Present (-want +got):\n%s", diff)
	}
	if got := Outcome(42).String(); got != "Outcome(42)" {
		t.Errorf("Outcome(42).String() = %q", got)
	}
}

func TestResultString(t *testing.T) {
	tests := []struct {
		r    Result
		want string
	}{
		{Result{Name: "virtio_net", Module: "virtio_net", Outcome: Loaded, Via: "finit_module", Duration: 1234567 * time.Nanosecond}, "virtio_net: loaded (1.235ms, finit_module)"},
		{Result{Name: "virtio-net", Module: "virtio_net", Outcome: Loaded, Via: "finit_module"}, "virtio_net: loaded (0s, finit_module)"},
		{Result{Name: "virtio_net", Module: "failover", Dep: true, Outcome: AlreadyLoaded, Duration: 3 * time.Microsecond}, "failover: already loaded (3µs), needed by virtio_net"},
		{Result{Name: "net-pf-17", Module: "af_packet", Outcome: BuiltIn}, "af_packet (net-pf-17): built-in (0s)"},
		{Result{Name: "x", Module: "x", Outcome: Failed, Err: errors.New("module not found in /lib/modules/6.1")}, "x: failed: module not found in /lib/modules/6.1 (0s)"},
		{Result{Name: "x", Module: "x", Outcome: WouldLoad}, "x: would load (0s)"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.r.String()); diff != "" {
			t.Errorf("String() (-want +got):\n%s", diff)
		}
	}
}
