package netcfg

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/internal/netnstest"
)

func TestLifetimes(t *testing.T) {
	tests := []struct {
		in                  Addr
		wantValid, wantPref int
	}{
		{Addr{}, 0, 0},
		{Addr{Valid: time.Hour}, 3600, 3600},
		{Addr{Valid: time.Hour, Preferred: 30 * time.Minute}, 3600, 1800},
		{Addr{Valid: time.Hour, Preferred: 2 * time.Hour}, 3600, 3600},
		{Addr{Valid: 1500 * time.Millisecond}, 2, 2},
		{Addr{Valid: infiniteLease}, infiniteLft, infiniteLft},
		{Addr{Preferred: time.Minute}, infiniteLft, 60},
	}
	for _, tt := range tests {
		v, p := lifetimes(tt.in)
		if v != tt.wantValid || p != tt.wantPref {
			t.Errorf("lifetimes(%+v) = %d, %d; want %d, %d", tt.in, v, p, tt.wantValid, tt.wantPref)
		}
	}
}

// fixtureLinks sets up links in ns with the MACs a fixture names: the
// pair's eth0 gets the first MAC, eth1... are added; every peer is up, so
// every link has a carrier.
func fixtureLinks(t *testing.T, ns *netnstest.NS, macs ...string) {
	t.Helper()
	for i, mac := range macs {
		if i == 0 {
			ns.Run(t, "ip", "link", "set", netnstest.ClientLink, "address", mac)
			continue
		}
		peer := fmt.Sprintf("srv%d", i)
		ns.AddVeth(t, fmt.Sprintf("eth%d", i), mac, peer)
		ns.Peer.Run(t, "ip", "link", "set", peer, "up")
	}
}

func fixturePlan(t *testing.T, file string, mode Mode) Plan {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixturesDir, file))
	if err != nil {
		t.Fatal(err)
	}
	f := configdrive.Files{MetaData: []byte("{}")}
	if strings.Contains(file, "network_data") {
		f.NetworkData = b
	} else {
		f.DigitalOcean = b
	}
	md, err := configdrive.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanFromMetadata(md, mode)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// state is the namespace's configuration as `ip -j` shows it, one line per
// global address and per route not added by the kernel itself, sorted.
func state(t *testing.T, ns *netnstest.NS) []string {
	t.Helper()
	var out []string
	for _, l := range ns.Addrs(t) {
		for _, a := range l.Addrs {
			if a.Scope == "global" {
				out = append(out, fmt.Sprintf("addr %s %s/%d", l.Name, a.Local, a.PrefixLen))
			}
		}
		if l.Name != "lo" {
			out = append(out, fmt.Sprintf("link %s mtu %d", l.Name, l.MTU))
		}
	}
	routes := append(ns.Routes(t), ns.Routes6(t)...)
	for _, r := range routes {
		if r.Protocol == "kernel" {
			continue
		}
		s := "route " + r.Dst
		if r.Gateway != "" {
			s += " via " + r.Gateway
		}
		s += " dev " + r.Dev
		if r.Scope != "" {
			s += " scope " + r.Scope
		}
		if r.Metric != 0 {
			s += fmt.Sprintf(" metric %d", r.Metric)
		}
		if r.Protocol != "" {
			s += " proto " + r.Protocol
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// TestApplyFixtures applies static plans from the fixtures in a namespace
// whose links carry the fixtures' MACs, twice, and compares `ip -j` output
// after each: the second apply must leave exactly the same, one of each.
func TestApplyFixtures(t *testing.T) {
	tests := []struct {
		file string
		macs []string
		want []string
		dns  string
	}{{
		file: "afterburn/ibmcloud-classic-vfat-network_data-static-routes.json",
		macs: []string{"06:52:db:01:ff:d9", "06:f6:71:3b:64:01"},
		want: []string{
			"addr eth0 10.135.202.146/26",
			"addr eth1 133.133.209.229/28",
			"link eth0 mtu 1500",
			"link eth1 mtu 1500",
			"route 10.0.0.0/8 via 10.135.202.129 dev eth0 proto static",
			"route 161.26.0.0/16 via 10.135.202.129 dev eth0 proto static",
			"route 166.8.0.0/14 via 10.135.202.129 dev eth0 proto static",
			"route default via 133.133.209.225 dev eth1 proto static",
		},
		dns: "nameserver 10.0.80.11\nnameserver 10.0.80.12\n",
	}, {
		file: "afterburn/kubevirt-network_data-static-dualstack-dhcp-ipv6dns.json",
		macs: []string{"06:aa:bb:cc:dd:00", "06:aa:bb:cc:dd:01"},
		want: []string{
			"addr eth0 192.168.1.10/24",
			"addr eth0 2001:db8::10/64",
			"link eth0 mtu 1500",
			"link eth1 mtu 1500",
			"route default via 192.168.1.1 dev eth0 proto static",
			"route default via 2001:db8::1 dev eth0 metric 1024 proto static",
		},
		dns: "nameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n",
	}, {
		file: "cloud-init/digitalocean-droplet-metadata-v1.json",
		macs: []string{"04:01:57:d1:9e:01", "04:01:57:d1:9e:02"},
		want: []string{
			"addr eth0 10.0.0.5/16",
			"addr eth0 192.0.0.20/24",
			"addr eth0 2604:a880:800:0:1000::/64",
			"addr eth1 10.132.6.205/16",
			"link eth0 mtu 1500",
			"link eth1 mtu 1500",
			"route 104.236.0.1 dev eth0 scope link proto static",
			"route default via 104.236.0.1 dev eth0 proto static",
			"route default via 2604:a880:800::1 dev eth0 metric 1024 proto static",
		},
		dns: "nameserver 2001:4860:4860::8844\nnameserver 2001:4860:4860::8888\nnameserver 8.8.8.8\n",
	}, {
		file: "talos/openstack-network_data-bond-vlan-ipv6-services.json",
		macs: []string{"a4:bf:00:10:20:30", "a4:bf:00:10:20:31", "a4:bf:00:10:20:33"},
		want: []string{
			"addr eth0 2000:0:100::/56",
			"addr eth1 10.184.0.244/20",
			"addr eth1 2001:db8::3257:9652/64",
			"link eth0 mtu 1450",
			"link eth1 mtu 9000",
			"link eth2 mtu 1500",
			"route 192.168.0.0/16 via 10.184.0.1 dev eth1 proto static",
			"route 2000:0:100:2f00::/58 via 2000:0:100:2fff:ff:ff:ff:f0 dev eth0 metric 1024 proto static",
			"route 2000:0:100:2fff:ff:ff:ff:f0 dev eth0 metric 1024 proto static",
			"route 2000:0:100:2fff:ff:ff:ff:ff dev eth0 metric 1024 proto static",
			"route default via 10.184.0.1 dev eth1 proto static",
			"route default via 2000:0:100:2fff:ff:ff:ff:ff dev eth0 metric 1024 proto static",
			"route default via fd00::1 dev eth1 metric 100 proto static",
			"route fd00::1 dev eth1 metric 1024 proto static",
		},
		dns: "nameserver 8.8.8.8\nnameserver 1.1.1.1\nnameserver 2000:0:100::1\n",
	}}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			ns := netnstest.New(t)
			fixtureLinks(t, ns, tt.macs...)
			h := ns.Handle(t)
			p := fixturePlan(t, tt.file, ModeStatic)
			root := t.TempDir()
			if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			for i, wantDNS := range []ResolvConfOutcome{ResolvConfWritten, ResolvConfUnchanged} {
				res, err := Apply(context.Background(), h, p, ApplyOptions{Root: root})
				if err != nil {
					t.Fatalf("apply %d: %v", i+1, err)
				}
				if res.ResolvConf != wantDNS {
					t.Errorf("apply %d: resolv.conf %q, want %q", i+1, res.ResolvConf, wantDNS)
				}
				if diff := cmp.Diff(tt.want, state(t, ns)); diff != "" {
					t.Errorf("apply %d: ip -j state (-want +got):\n%s", i+1, diff)
				}
			}
			conf := readFile(t, filepath.Join(root, "etc", "resolv.conf"))
			if !strings.HasPrefix(conf, ResolvConfMarker) || !strings.HasSuffix(conf, tt.dns) {
				t.Errorf("resolv.conf = %q, want the marker and %q", conf, tt.dns)
			}
		})
	}
}

// TestApplyRemove applies a lease-like plan with lifetimes, checks them in
// `ip -j addr`, then removes it: no address or route of it remains, and a
// second Remove finds nothing to do without error.
func TestApplyRemove(t *testing.T) {
	ns := netnstest.New(t)
	h := ns.Handle(t)
	lp := LinkPlan{
		Name: netnstest.ClientLink, Method: MethodDHCP, Source: "dhcp", MTU: 100000,
		Addrs: []Addr{{Prefix: netip.MustParsePrefix("10.77.0.50/32"), Valid: time.Hour, Preferred: 30 * time.Minute}},
		Routes: []Route{
			{Dst: netip.MustParsePrefix("10.77.0.1/32")},
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.77.0.1")},
		},
	}
	res, err := Apply(context.Background(), h, Plan{Links: []LinkPlan{lp}}, ApplyOptions{Root: t.TempDir()})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "MTU 100000") {
		t.Errorf("warnings = %q, want one about MTU 100000", res.Warnings)
	}
	if res.ResolvConf != ResolvConfNoDNS {
		t.Errorf("resolv.conf outcome %q, want %q", res.ResolvConf, ResolvConfNoDNS)
	}
	want := []string{
		"addr eth0 10.77.0.50/32",
		"link eth0 mtu 9000",
		"route 10.77.0.1 dev eth0 scope link proto dhcp",
		"route default via 10.77.0.1 dev eth0 proto dhcp",
	}
	if diff := cmp.Diff(want, state(t, ns)); diff != "" {
		t.Errorf("after Apply (-want +got):\n%s", diff)
	}
	addrs := ns.Addrs(t, "dev", netnstest.ClientLink)
	i := slices.IndexFunc(addrs[0].Addrs, func(a netnstest.AddrInfo) bool { return a.Local == "10.77.0.50" })
	if i < 0 {
		t.Fatalf("10.77.0.50 missing: %+v", addrs)
	}
	if a := addrs[0].Addrs[i]; a.Valid > 3600 || a.Valid < 3500 || a.Preferred > 1800 || a.Preferred < 1700 {
		t.Errorf("lifetimes valid %d preferred %d, want about 3600 and 1800", a.Valid, a.Preferred)
	}
	if got := res.Links[0].String(); got != "eth0 dhcp 10.77.0.50/32, default via 10.77.0.1, mtu 9000" {
		t.Errorf("log line %q", got)
	}

	for i := range 2 {
		if err := Remove(context.Background(), h, lp); err != nil {
			t.Fatalf("Remove %d: %v", i+1, err)
		}
		if diff := cmp.Diff([]string{"link eth0 mtu 9000"}, state(t, ns)); diff != "" {
			t.Errorf("after Remove %d (-want +got):\n%s", i+1, diff)
		}
	}
}

// TestApplyCollectsErrors gives Apply a plan with a missing link, a route
// through an unreachable gateway and good items: the good ones are applied,
// every failure is in the error.
func TestApplyCollectsErrors(t *testing.T) {
	ns := netnstest.New(t)
	h := ns.Handle(t)
	p := Plan{Links: []LinkPlan{
		{MAC: "02:00:5e:00:53:99", Method: MethodStatic, Addrs: []Addr{{Prefix: netip.MustParsePrefix("192.0.2.9/24")}}},
		{Name: netnstest.ClientLink, Method: MethodStatic,
			Addrs: []Addr{{Prefix: netip.MustParsePrefix("192.0.2.10/24")}},
			Routes: []Route{
				{Dst: netip.MustParsePrefix("198.51.100.0/24"), Gateway: netip.MustParseAddr("203.0.113.1")},
				{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("192.0.2.1")},
			}},
	}}
	res, err := Apply(context.Background(), h, p, ApplyOptions{Root: t.TempDir()})
	if err == nil {
		t.Fatal("Apply succeeded, want errors")
	}
	for _, want := range []string{"find link 02:00:5e:00:53:99", "add route 198.51.100.0/24 via 203.0.113.1 on eth0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	want := []string{
		"addr eth0 192.0.2.10/24",
		"link eth0 mtu 1500",
		"route default via 192.0.2.1 dev eth0 proto static",
	}
	if diff := cmp.Diff(want, state(t, ns)); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if len(res.Links) != 2 || res.Links[0].Err == nil || res.Links[1].Err == nil || len(res.Links[1].Routes) != 1 {
		t.Errorf("results = %+v, want both links with an error and one route in place", res.Links)
	}
}

// TestStaticChain runs the whole static path as the agent does: plan from
// the DigitalOcean fixture, links chosen by its MACs, waited for by
// netlink, fitted with the kernel's names, applied. A link the metadata
// does not name (eth2) is left alone.
func TestStaticChain(t *testing.T) {
	ns := netnstest.New(t)
	fixtureLinks(t, ns, "04:01:57:d1:9e:01", "04:01:57:d1:9e:02", "02:00:5e:00:53:02")
	h := ns.Handle(t)
	nsh := ns.NsHandle(t)
	md := fixturePlan(t, "cloud-init/digitalocean-droplet-metadata-v1.json", ModeAuto)
	refs, err := ChooseLinks(nil, md, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]LinkRef{{MAC: "04:01:57:d1:9e:01"}, {MAC: "04:01:57:d1:9e:02"}}, refs); diff != "" {
		t.Errorf("ChooseLinks (-want +got):\n%s", diff)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	found, err := WaitLinks(ctx, h, refs, WaitOptions{Namespace: &nsh})
	if err != nil {
		t.Fatalf("WaitLinks: %v", err)
	}
	p := ForLinks(md, found, ModeAuto)
	if _, err := Apply(ctx, h, p, ApplyOptions{ResolvConf: ResolvConfSkip}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{
		"addr eth0 10.0.0.5/16",
		"addr eth0 192.0.0.20/24",
		"addr eth0 2604:a880:800:0:1000::/64",
		"addr eth1 10.132.6.205/16",
		"link eth0 mtu 1500",
		"link eth1 mtu 1500",
		"link eth2 mtu 1500",
		"route 104.236.0.1 dev eth0 scope link proto static",
		"route default via 104.236.0.1 dev eth0 proto static",
		"route default via 2604:a880:800::1 dev eth0 metric 1024 proto static",
	}
	if diff := cmp.Diff(want, state(t, ns)); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}
