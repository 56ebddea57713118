package kmod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// outcome is the part of a Result a test compares; errors are checked on
// their own, durations not at all.
type outcome struct {
	Name, Module string
	Dep          bool
	Outcome      Outcome
	Via          string
}

func outcomes(results []Result) []outcome {
	var o []outcome
	for _, r := range results {
		o = append(o, outcome{r.Name, r.Module, r.Dep, r.Outcome, r.Via})
	}
	return o
}

// virtioTree writes a tree shaped like Debian's virtio modules.
func virtioTree(s *fakeSystem) {
	s.index("modules.dep", `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/isofs/isofs.ko: kernel/drivers/cdrom/cdrom.ko
kernel/drivers/cdrom/cdrom.ko:
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
`)
	for _, m := range []string{
		"kernel/drivers/net/virtio_net.ko", "kernel/drivers/net/net_failover.ko", "kernel/net/core/failover.ko",
		"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/block/virtio_blk.ko",
		"kernel/fs/isofs/isofs.ko", "kernel/drivers/cdrom/cdrom.ko", "kernel/drivers/char/hw_random/virtio-rng.ko",
	} {
		s.module(m)
	}
	s.index("modules.alias", `# Aliases extracted from modules themselves.
alias fs-iso9660 isofs
alias iso9660 isofs
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias virtio:d00000004v* virtio_rng
alias devname:cdrom cdrom
`)
	s.index("modules.builtin", "kernel/net/packet/af_packet.ko\nkernel/drivers/virtio/virtio_pci.ko\n")
	s.write(s.tree+"/modules.builtin.modinfo", []byte("af_packet.alias=net-pf-17\x00af_packet.license=GPL\x00virtio_pci.alias=pci:v00001AF4d*sv*sd*bc*sc*i*\x00"))
}

func TestLoad(t *testing.T) {
	loaded := func(name, m string, dep bool) outcome {
		return outcome{name, m, dep, Loaded, "finit_module"}
	}
	// What virtio_net needs, in load order.
	virtioNetDeps := []outcome{
		loaded("virtio_net", "virtio_ring", true),
		loaded("virtio_net", "virtio", true),
		loaded("virtio_net", "failover", true),
		loaded("virtio_net", "net_failover", true),
	}
	tests := []struct {
		name      string
		specs     []string
		setup     func(*fakeSystem)
		want      []outcome
		wantCalls []string // modules given to the kernel, in order
	}{{
		name:  "dependencies first, deepest first, each once",
		specs: []string{"virtio_net", "virtio_blk"},
		want: append(virtioNetDeps,
			loaded("virtio_net", "virtio_net", false),
			loaded("virtio_blk", "virtio_blk", false),
		),
		wantCalls: []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net", "virtio_blk"},
	}, {
		name:  "dash and underscore are the same",
		specs: []string{"virtio-net", "virtio_rng"},
		want: append(virtioNetDeps,
			loaded("virtio-net", "virtio_net", false),
			loaded("virtio_rng", "virtio_rng", false),
		),
		wantCalls: []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net", "virtio_rng"},
	}, {
		name:  "aliases, plain and wildcard",
		specs: []string{"fs-iso9660", "virtio:d00000002v00001AF4"},
		want: []outcome{
			loaded("isofs", "cdrom", true),
			loaded("fs-iso9660", "isofs", false),
			loaded("virtio_blk", "virtio_ring", true),
			loaded("virtio_blk", "virtio", true),
			loaded("virtio:d00000002v00001AF4", "virtio_blk", false),
		},
		wantCalls: []string{"cdrom", "isofs", "virtio_ring", "virtio", "virtio_blk"},
	}, {
		name:  "built in: modules.builtin, its modinfo aliases, /sys/module without initstate",
		specs: []string{"af_packet", "net-pf-17", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", "unix"},
		setup: func(s *fakeSystem) { s.write("/sys/module/unix/parameters/x", nil) },
		want: []outcome{
			{"af_packet", "af_packet", false, BuiltIn, ""},
			{"net-pf-17", "af_packet", false, BuiltIn, ""},
			{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", "virtio_pci", false, BuiltIn, ""},
			{"unix", "unix", false, BuiltIn, ""},
		},
	}, {
		name:  "already loaded: /sys/module/X/initstate, /proc/modules",
		specs: []string{"virtio_net", "isofs"},
		setup: func(s *fakeSystem) {
			s.loadedModule("failover")
			s.write("/proc/modules", []byte("cdrom 81920 1 isofs, Live 0xffffffffc0a00000\nvirtio 16384 0 - Live 0x0\n"))
		},
		want: []outcome{
			loaded("virtio_net", "virtio_ring", true),
			{"virtio_net", "virtio", true, AlreadyLoaded, ""},
			{"virtio_net", "failover", true, AlreadyLoaded, ""},
			loaded("virtio_net", "net_failover", true),
			loaded("virtio_net", "virtio_net", false),
			{"isofs", "cdrom", true, AlreadyLoaded, ""},
			loaded("isofs", "isofs", false),
		},
		wantCalls: []string{"virtio_ring", "net_failover", "virtio_net", "isofs"},
	}, {
		name:  "a name asked for twice, or after it came as a dependency",
		specs: []string{"virtio_net", "failover", "virtio_net"},
		want: append(virtioNetDeps,
			loaded("virtio_net", "virtio_net", false),
			outcome{"failover", "failover", false, AlreadyLoaded, ""},
			outcome{"virtio_net", "virtio_net", false, AlreadyLoaded, ""},
		),
		wantCalls: []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"},
	}, {
		name:  "absolute paths in modules.dep, as older depmod wrote",
		specs: []string{"isofs"},
		setup: func(s *fakeSystem) {
			s.index("modules.dep", s.tree+"/kernel/fs/isofs/isofs.ko: "+s.tree+"/kernel/drivers/cdrom/cdrom.ko\n"+s.tree+"/kernel/drivers/cdrom/cdrom.ko:\n")
		},
		want:      []outcome{loaded("isofs", "cdrom", true), loaded("isofs", "isofs", false)},
		wantCalls: []string{"cdrom", "isofs"},
	}, {
		name:  "a post: softdep that needs the module is no cycle",
		specs: []string{"cdrom"},
		setup: func(s *fakeSystem) {
			s.index("modules.softdep", "softdep cdrom post: isofs\n")
		},
		want:      []outcome{loaded("cdrom", "cdrom", false), loaded("cdrom", "isofs", true)},
		wantCalls: []string{"cdrom", "isofs"},
	}, {
		name:      "tab between name and parameters",
		specs:     []string{"cdrom\tdebug=1"},
		want:      []outcome{loaded("cdrom", "cdrom", false)},
		wantCalls: []string{"cdrom"},
	}, {
		name:      "EEXIST: another loader won the race",
		specs:     []string{"cdrom"},
		setup:     func(s *fakeSystem) { s.kernel.refuse["cdrom"] = unix.EEXIST },
		want:      []outcome{{"cdrom", "cdrom", false, AlreadyLoaded, ""}},
		wantCalls: []string{"cdrom"},
	}, {
		name:  "softdep pre: before, post: after, missing softdeps ignored",
		specs: []string{"isofs"},
		setup: func(s *fakeSystem) {
			s.index("modules.softdep", "# comment\nsoftdep isofs pre: virtio-rng nosuch post: failover\nsoftdep isofs ignored-before-mode\n")
		},
		want: []outcome{
			loaded("virtio_rng", "virtio_ring", true),
			loaded("virtio_rng", "virtio", true),
			loaded("isofs", "virtio_rng", true),
			loaded("isofs", "cdrom", true),
			loaded("isofs", "isofs", false),
			loaded("isofs", "failover", true),
		},
		wantCalls: []string{"virtio_ring", "virtio", "virtio_rng", "cdrom", "isofs", "failover"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeSystem(t)
			virtioTree(s)
			if tt.setup != nil {
				tt.setup(s)
			}
			results := s.loader().Load(context.Background(), tt.specs...)
			for _, r := range results {
				if r.Err != nil {
					t.Errorf("%s: unexpected error %v", r.Module, r.Err)
				}
			}
			if diff := cmp.Diff(tt.want, outcomes(results)); diff != "" {
				t.Errorf("Load(%q) results (-want +got):\n%s", tt.specs, diff)
			}
			var calls []string
			for _, c := range s.kernel.calls {
				calls = append(calls, c.Module)
			}
			if diff := cmp.Diff(tt.wantCalls, calls); diff != "" {
				t.Errorf("Load(%q) kernel calls (-want +got):\n%s", tt.specs, diff)
			}
		})
	}
}

func TestLoadFailures(t *testing.T) {
	tests := []struct {
		name    string
		specs   []string
		setup   func(*fakeSystem)
		want    []outcome
		wantErr map[string]string // module → text its error must hold
		wantIs  map[string]error
	}{{
		name:  "missing module fails, the others load",
		specs: []string{"nosuch", "cdrom"},
		want: []outcome{
			{"nosuch", "nosuch", false, Failed, ""},
			{"cdrom", "cdrom", false, Loaded, "finit_module"},
		},
		wantErr: map[string]string{"nosuch": "module not found in /lib/modules/6.1.0-test"},
		wantIs:  map[string]error{"nosuch": ErrNotFound},
	}, {
		name:  "refused by the kernel: the reason, and what needs it fails",
		specs: []string{"isofs", "failover"},
		setup: func(s *fakeSystem) { s.kernel.refuse["cdrom"] = unix.ENOEXEC },
		want: []outcome{
			{"isofs", "cdrom", true, Failed, ""},
			{"isofs", "isofs", false, Failed, ""},
			{"failover", "failover", false, Loaded, "finit_module"},
		},
		wantErr: map[string]string{
			"cdrom": "finit_module /lib/modules/6.1.0-test/kernel/drivers/cdrom/cdrom.ko: exec format error",
			"isofs": "needs cdrom: finit_module /lib/modules/6.1.0-test/kernel/drivers/cdrom/cdrom.ko: exec format error",
		},
		wantIs: map[string]error{"cdrom": unix.ENOEXEC, "isofs": unix.ENOEXEC},
	}, {
		name:  "unknown symbol: ENOENT explained",
		specs: []string{"cdrom"},
		setup: func(s *fakeSystem) { s.kernel.refuse["cdrom"] = unix.ENOENT },
		want:  []outcome{{"cdrom", "cdrom", false, Failed, ""}},
		wantErr: map[string]string{
			"cdrom": "finit_module /lib/modules/6.1.0-test/kernel/drivers/cdrom/cdrom.ko: no such file or directory (unknown symbol in module or unknown parameter, see dmesg)",
		},
		wantIs: map[string]error{"cdrom": unix.ENOENT},
	}, {
		name:    "file listed in modules.dep but gone",
		specs:   []string{"gone"},
		setup:   func(s *fakeSystem) { s.index("modules.dep", "kernel/gone.ko:\n") },
		want:    []outcome{{"gone", "gone", false, Failed, ""}},
		wantErr: map[string]string{"gone": "open "},
		wantIs:  map[string]error{"gone": unix.ENOENT},
	}, {
		name:  "dependency cycle",
		specs: []string{"a", "c"},
		setup: func(s *fakeSystem) {
			s.index("modules.dep", "a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\n")
			s.module("a.ko")
			s.module("b.ko")
			s.module("c.ko")
		},
		want: []outcome{
			{"b", "c", true, Failed, ""},
			{"a", "b", true, Failed, ""},
			{"a", "a", false, Failed, ""},
			{"c", "c", false, Failed, ""},
		},
		wantErr: map[string]string{
			"c": "dependency cycle: a -> b -> c -> a",
			"a": "needs b: needs c: dependency cycle: a -> b -> c -> a",
		},
		wantIs: map[string]error{"a": ErrCycle, "b": ErrCycle, "c": ErrCycle},
	}, {
		name:  "dependencies nested too deep",
		specs: []string{"m0"},
		setup: func(s *fakeSystem) {
			var dep strings.Builder
			for i := range 100 {
				fmt.Fprintf(&dep, "m%d.ko: m%d.ko\n", i, i+1)
			}
			s.index("modules.dep", dep.String())
		},
		want:    deepChain(),
		wantIs:  map[string]error{"m0": ErrTooLarge, "m64": ErrTooLarge},
		wantErr: map[string]string{"m64": "too large: dependencies nest deeper than 64"},
	}, {
		name:  "module depends on itself",
		specs: []string{"selfish"},
		setup: func(s *fakeSystem) {
			s.index("modules.dep", "selfish.ko: selfish.ko\n")
			s.module("selfish.ko")
		},
		want:    []outcome{{"selfish", "selfish", false, Failed, ""}},
		wantErr: map[string]string{"selfish": "dependency cycle: selfish -> selfish"},
	}, {
		name:  "malformed modules.dep fails every name, naming the line",
		specs: []string{"cdrom", "isofs"},
		setup: func(s *fakeSystem) { s.index("modules.dep", "kernel/a.ko:\n\nkernel/b.ko kernel/a.ko\n") },
		want: []outcome{
			{"cdrom", "cdrom", false, Failed, ""},
			{"isofs", "isofs", false, Failed, ""},
		},
		wantErr: map[string]string{"cdrom": "modules.dep line 3: malformed line: no ':'"},
		wantIs:  map[string]error{"cdrom": ErrMalformed, "isofs": ErrMalformed},
	}, {
		name:  "names that cannot be modules",
		specs: []string{"..", "../../etc", " ", "cdrom"},
		want: []outcome{
			{"..", "..", false, Failed, ""},
			{"../../etc", "../../etc", false, Failed, ""},
			{"", "", false, Failed, ""},
			{"cdrom", "cdrom", false, Loaded, "finit_module"},
		},
		wantErr: map[string]string{"..": `bad module name ".."`, "": `bad module name ""`},
	}, {
		name:  "a FIFO for a module file does not block",
		specs: []string{"cdrom"},
		setup: func(s *fakeSystem) {
			p := s.root + s.tree + "/kernel/drivers/cdrom/cdrom.ko"
			if err := os.Remove(p); err != nil {
				s.t.Fatal(err)
			}
			if err := unix.Mkfifo(p, 0o644); err != nil {
				s.t.Fatal(err)
			}
		},
		want:    []outcome{{"cdrom", "cdrom", false, Failed, ""}},
		wantErr: map[string]string{"cdrom": "cdrom.ko: not a regular file"},
	}, {
		name:  "a FIFO for an index file does not block",
		specs: []string{"cdrom"},
		setup: func(s *fakeSystem) {
			if err := unix.Mkfifo(s.root+s.tree+"/modules.softdep", 0o644); err != nil {
				s.t.Fatal(err)
			}
		},
		want:    []outcome{{"cdrom", "cdrom", false, Failed, ""}},
		wantErr: map[string]string{"cdrom": "modules.softdep: not a regular file"},
	}, {
		name:   "cancelled context",
		specs:  []string{"cdrom"},
		setup:  func(s *fakeSystem) {},
		want:   []outcome{{"cdrom", "cdrom", false, Failed, ""}},
		wantIs: map[string]error{"cdrom": context.Canceled},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeSystem(t)
			virtioTree(s)
			if tt.setup != nil {
				tt.setup(s)
			}
			ctx := context.Background()
			if tt.name == "cancelled context" {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			results := s.loader().Load(ctx, tt.specs...)
			if diff := cmp.Diff(tt.want, outcomes(results)); diff != "" {
				t.Errorf("Load(%q) results (-want +got):\n%s", tt.specs, diff)
			}
			for _, r := range results {
				if want, ok := tt.wantErr[r.Module]; ok && (r.Err == nil || !strings.Contains(r.Err.Error(), want)) {
					t.Errorf("%s: error %v, want it to contain %q", r.Module, r.Err, want)
				}
				if want, ok := tt.wantIs[r.Module]; ok && !errors.Is(r.Err, want) {
					t.Errorf("%s: error %v, want errors.Is %v", r.Module, r.Err, want)
				}
				if r.Outcome == Failed && r.Err == nil {
					t.Errorf("%s: failed without an error", r.Module)
				}
			}
		})
	}
}

// TestLoadReport: Report sees every Result, in order, as soon as it is
// decided: after the kernel call that decided it, before the next one.
func TestLoadReport(t *testing.T) {
	s := newFakeSystem(t)
	virtioTree(s)
	l := s.loader()
	var reported []Result
	var callsSoFar []int
	l.Report = func(r Result) {
		reported = append(reported, r)
		callsSoFar = append(callsSoFar, len(s.kernel.calls))
	}
	results := l.Load(context.Background(), "isofs", "nosuch", "af_packet", "isofs", "failover")
	if diff := cmp.Diff(outcomes(results), outcomes(reported)); diff != "" {
		t.Errorf("reported (-returned +reported):\n%s", diff)
	}
	// cdrom, isofs, nosuch, af_packet, isofs again, failover.
	if diff := cmp.Diff([]int{1, 2, 2, 2, 2, 3}, callsSoFar); diff != "" {
		t.Errorf("kernel calls made when each result was reported (-want +got):\n%s", diff)
	}
}

// deepChain is the outcome of loading m0 where m<i> needs m<i+1>, 100
// deep: m64 is refused and every module above it fails for it.
func deepChain() []outcome {
	var o []outcome
	for i := 64; i >= 0; i-- {
		name := "m0"
		if i > 0 {
			name = fmt.Sprintf("m%d", i-1)
		}
		o = append(o, outcome{name, fmt.Sprintf("m%d", i), i > 0, Failed, ""})
	}
	return o
}

func TestLoadParams(t *testing.T) {
	s := newFakeSystem(t)
	virtioTree(s)
	s.loader().Load(context.Background(), "isofs  check=relaxed map=off", "virtio_ring")
	want := []call{
		{"finit_module", "cdrom", "", 0},
		{"finit_module", "isofs", "check=relaxed map=off", 0},
		{"finit_module", "virtio_ring", "", 0},
	}
	if diff := cmp.Diff(want, s.kernel.calls); diff != "" {
		t.Errorf("kernel calls (-want +got):\n%s", diff)
	}
}

// A kernel with no module tree at all (monolithic, or the tree missing):
// modules that are built in or already loaded are still present, and only
// a module that would need loading fails, naming the missing tree.
func TestLoadWithoutTree(t *testing.T) {
	s := newFakeSystem(t)
	s.write("/sys/module/af_packet/parameters/x", nil) // built in: no initstate
	s.loadedModule("isofs")
	got := s.loader().Load(t.Context(), "af-packet", "isofs", "virtio_net")
	want := []outcome{
		{"af-packet", "af_packet", false, BuiltIn, ""},
		{"isofs", "isofs", false, AlreadyLoaded, ""},
		{"virtio_net", "virtio_net", false, Failed, ""},
	}
	if diff := cmp.Diff(want, outcomes(got)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if err := got[2].Err; err == nil || !strings.Contains(err.Error(), "6.1.0-test") {
		t.Errorf("virtio_net error = %v, want one naming the missing tree", err)
	}
	if len(s.kernel.calls) != 0 {
		t.Errorf("kernel calls = %v, want none", s.kernel.calls)
	}
}
