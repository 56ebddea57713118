package netcfg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/internal/netnstest"
)

// sysTree builds a sysfs-like class/net under a temporary directory: each
// link has a type file, and a device, bridge or bonding entry as given.
func sysTree(t *testing.T, links map[string][]string) string {
	t.Helper()
	sys := t.TempDir()
	for name, entries := range links {
		dir := filepath.Join(sys, "class", "net", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			var err error
			if typ, ok := strings.CutPrefix(e, "type="); ok {
				err = os.WriteFile(filepath.Join(dir, "type"), []byte(typ+"\n"), 0o644)
			} else {
				err = os.Mkdir(filepath.Join(dir, e), 0o755)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return sys
}

func TestChooseLinks(t *testing.T) {
	sys := sysTree(t, map[string][]string{
		"eth0":  {"type=1", "device"},
		"ens4":  {"type=1", "device"},
		"lo":    {"type=772"},
		"br0":   {"type=1", "bridge"},
		"bond0": {"type=1", "bonding", "device"},
		"veth0": {"type=1"},
		"ib0":   {"type=32", "device"},
	})
	plan := Plan{Links: []LinkPlan{{MAC: "02:00:00:00:00:01"}, {Name: "nic0"}, {MAC: "02:00:00:00:00:01"}}}
	tests := []struct {
		name   string
		ifaces []string
		plan   Plan
		want   []LinkRef
	}{
		{"--iface wins", []string{"eth1", "eth0", "eth1"}, plan, []LinkRef{{Name: "eth1"}, {Name: "eth0"}}},
		{"the plan's links", nil, plan, []LinkRef{{MAC: "02:00:00:00:00:01"}, {Name: "nic0"}}},
		{"physical Ethernet links", nil, Plan{}, []LinkRef{{Name: "ens4"}, {Name: "eth0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChooseLinks(tt.ifaces, tt.plan, sys)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ChooseLinks (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := ChooseLinks(nil, Plan{}, filepath.Join(sys, "missing")); err == nil {
		t.Error("ChooseLinks with no class/net succeeded, want an error")
	}
}

func TestForLinks(t *testing.T) {
	static := LinkPlan{MAC: "02:00:00:00:00:01", Method: MethodStatic, Source: SourceNetworkData}
	named := LinkPlan{Name: "nic0", Method: MethodDHCP, Source: SourceNetworkData}
	gone := LinkPlan{MAC: "02:00:00:00:00:09", Method: MethodStatic, Source: SourceNetworkData}
	p := Plan{Links: []LinkPlan{static, named, gone}, Warnings: []string{"w"}}
	found := []LinkRef{{Name: "eth0", MAC: "02:00:00:00:00:01"}, {Name: "nic0", MAC: "02:00:00:00:00:02"}, {Name: "eth2", MAC: "02:00:00:00:00:03"}}

	withName := func(lp LinkPlan, name, mac string) LinkPlan { lp.Name, lp.MAC = name, mac; return lp }
	wantWarn := []string{"w", "link 02:00:00:00:00:09 from network_data.json: not among the links chosen: not configured"}
	tests := []struct {
		mode Mode
		want Plan
	}{
		{ModeAuto, Plan{Links: []LinkPlan{
			withName(static, "eth0", "02:00:00:00:00:01"),
			withName(named, "nic0", "02:00:00:00:00:02"),
			{Name: "eth2", MAC: "02:00:00:00:00:03", Method: MethodDHCP},
		}, Warnings: wantWarn}},
		{ModeStatic, Plan{Links: []LinkPlan{
			withName(static, "eth0", "02:00:00:00:00:01"),
			withName(named, "nic0", "02:00:00:00:00:02"),
		}, Warnings: wantWarn}},
	}
	for _, tt := range tests {
		got := ForLinks(p, found, tt.mode)
		if diff := cmp.Diff(tt.want, got, ipOpts); diff != "" {
			t.Errorf("ForLinks(%s) (-want +got):\n%s", tt.mode, diff)
		}
	}
}

// TestWaitLinksEvent starts WaitLinks for a link that does not exist yet,
// adds it once the subscription is in place, and expects WaitLinks to see
// it by its netlink event, set it up, and wait for its carrier. lo, set
// down first, must come back up.
func TestWaitLinksEvent(t *testing.T) {
	ns := netnstest.New(t)
	h := ns.Handle(t)
	nsh := ns.NsHandle(t)
	ns.Run(t, "ip", "link", "set", "lo", "down")
	const mac = "02:00:5e:00:53:42"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subscribed := make(chan struct{})
	type result struct {
		found []LinkRef
		err   error
	}
	done := make(chan result, 1)
	go func() {
		found, err := WaitLinks(ctx, h, []LinkRef{{MAC: mac}}, WaitOptions{Namespace: &nsh, subscribed: func() { close(subscribed) }})
		done <- result{found, err}
	}()
	select {
	case <-subscribed:
	case r := <-done:
		t.Fatalf("WaitLinks returned before subscribing: %v, %v", r.found, r.err)
	}
	ns.AddVeth(t, "eth7", mac, "srv7")
	ns.Peer.Run(t, "ip", "link", "set", "srv7", "up") // the carrier
	r := <-done
	if r.err != nil {
		t.Fatalf("WaitLinks: %v", r.err)
	}
	if diff := cmp.Diff([]LinkRef{{Name: "eth7", MAC: mac}}, r.found); diff != "" {
		t.Errorf("found (-want +got):\n%s", diff)
	}
	for _, name := range []string{"eth7", "lo"} {
		l := ns.Links(t, "dev", name)
		if len(l) != 1 || !slices.Contains(l[0].Flags, "UP") || !slices.Contains(l[0].Flags, "LOWER_UP") {
			t.Errorf("%s = %+v, want UP and LOWER_UP", name, l)
		}
	}
}

// TestWaitLinksDeadline waits for a link that never appears and one that
// never gets a carrier: both named in the error, within the deadline.
func TestWaitLinksDeadline(t *testing.T) {
	ns := netnstest.New(t)
	h := ns.Handle(t)
	nsh := ns.NsHandle(t)
	ns.AddVeth(t, "eth8", "02:00:5e:00:53:08", "srv8") // peer left down: no carrier

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	found, err := WaitLinks(ctx, h, []LinkRef{{Name: "eth9"}, {Name: "eth8"}}, WaitOptions{Namespace: &nsh})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("WaitLinks took %v with a 300ms deadline", took)
	}
	if !errors.Is(err, ErrLinkMissing) || !errors.Is(err, ErrNoCarrier) {
		t.Errorf("WaitLinks error = %v, want both ErrLinkMissing and ErrNoCarrier", err)
	}
	if diff := cmp.Diff([]LinkRef{{Name: "eth8", MAC: "02:00:5e:00:53:08"}}, found); diff != "" {
		t.Errorf("found (-want +got):\n%s", diff)
	}
	// Without carrier but NoCarrierOK: found at once, no error.
	found, err = WaitLinks(context.Background(), h, []LinkRef{{Name: "eth8"}}, WaitOptions{Namespace: &nsh, NoCarrierOK: true})
	if err != nil || len(found) != 1 {
		t.Errorf("WaitLinks(NoCarrierOK) = %v, %v; want eth8", found, err)
	}
}
