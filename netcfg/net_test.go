package netcfg

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/notos-agent/notos-agent/configdrive"
)

func TestWithLease(t *testing.T) {
	v6 := Addr{Prefix: netip.MustParsePrefix("2001:db8::10/64")}
	v6route := Route{Dst: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("2001:db8::1")}
	dns := func(s ...string) DNS {
		var d DNS
		for _, a := range s {
			d.Servers = append(d.Servers, netip.MustParseAddr(a))
		}
		return d
	}
	meta := LinkPlan{
		Name: "eth0", Method: MethodDHCP, MTU: 1450,
		Addrs:  []Addr{v6, {Prefix: netip.MustParsePrefix("192.0.2.99/24")}},
		Routes: []Route{v6route},
		DNS:    dns("2001:db8::53", "192.0.2.53"),
		IPv6:   []Method{MethodKernel},
	}
	v4 := Addr{Prefix: netip.MustParsePrefix("192.0.2.10/24")}
	v4route := Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("192.0.2.1")}
	lease := LinkPlan{Name: "eth0", Method: MethodDHCP, Source: "dhcp", Addrs: []Addr{v4}, Routes: []Route{v4route}, DNS: dns("192.0.2.53")}
	tests := []struct {
		name  string
		lease LinkPlan
		want  LinkPlan
	}{
		{"metadata MTU kept", lease, LinkPlan{
			Name: "eth0", Method: MethodDHCP, Source: "dhcp", MTU: 1450,
			Addrs: []Addr{v4, v6}, Routes: []Route{v4route, v6route}, IPv6: []Method{MethodKernel},
			DNS: dns("192.0.2.53", "2001:db8::53"),
		}},
		{"lease MTU wins", func() LinkPlan { l := lease; l.MTU = 1400; return l }(), LinkPlan{
			Name: "eth0", Method: MethodDHCP, Source: "dhcp", MTU: 1400,
			Addrs: []Addr{v4, v6}, Routes: []Route{v4route, v6route}, IPv6: []Method{MethodKernel},
			DNS: dns("192.0.2.53", "2001:db8::53"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, withLease(meta, tt.lease), ipOpts); diff != "" {
				t.Errorf("withLease (-want +got):\n%s", diff)
			}
		})
	}
}

// The Talos fixture's public link: ipv4_dhcp beside static IPv6. The lease
// brings IPv4; the metadata's IPv6 addresses, routes and DNS server stay.
func TestWithLeaseTalosFixture(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixturesDir, "talos", "openstack-network_data-bond-vlan-ipv6-services.json"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := configdrive.Parse(configdrive.Files{MetaData: []byte("{}"), NetworkData: b})
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanFromMetadata(md, ModeAuto)
	if err != nil {
		t.Fatal(err)
	}
	meta := p.Links[0]
	if meta.Method != MethodDHCP || meta.MAC != "a4:bf:00:10:20:30" {
		t.Fatalf("first link %+v, want the DHCP link a4:bf:00:10:20:30", meta)
	}
	meta.Name = "eth0"
	lp, err := ACKToPlan("eth0", testACK(t, mask(255, 255, 255, 0),
		dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1))),
		dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(192, 0, 2, 53)))), testAcquired)
	if err != nil {
		t.Fatal(err)
	}
	got := withLease(meta, lp.Links[0])
	var addrs, routes, servers []string
	for _, a := range got.Addrs {
		addrs = append(addrs, a.Prefix.String())
	}
	for _, r := range got.Routes {
		routes = append(routes, describeRoute(r))
	}
	for _, s := range got.DNS.Servers {
		servers = append(servers, s.String())
	}
	want := []string{
		"192.0.2.10/24", "2000:0:100::/56",
		"0.0.0.0/0 via 192.0.2.1", "2000:0:100:2fff:ff:ff:ff:f0/128 on-link", "2000:0:100:2f00::/58 via 2000:0:100:2fff:ff:ff:ff:f0",
		"2000:0:100:2fff:ff:ff:ff:ff/128 on-link", "::/0 via 2000:0:100:2fff:ff:ff:ff:ff",
		"192.0.2.53", "2000:0:100::1",
	}
	if diff := cmp.Diff(want, append(append(addrs, routes...), servers...)); diff != "" {
		t.Errorf("addresses, routes, DNS servers (-want +got):\n%s", diff)
	}
	if got.MTU != 1450 || got.Lease == nil || got.Method != MethodDHCP {
		t.Errorf("MTU %d, lease %v, method %s; want the metadata's 1450, the lease, dhcp", got.MTU, got.Lease, got.Method)
	}
}

func TestMergeDNS(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	got := mergeDNS(
		DNS{Servers: []netip.Addr{a("192.0.2.53")}, Search: []string{"corp.example"}},
		DNS{Servers: []netip.Addr{a("192.0.2.53"), a("198.51.100.53")}, Search: []string{"example.net", "corp.example"}, Domain: "example.net"},
	)
	want := DNS{
		Servers: []netip.Addr{a("192.0.2.53"), a("198.51.100.53")},
		Search:  []string{"corp.example", "example.net"},
		Domain:  "example.net",
	}
	if diff := cmp.Diff(want, got, ipOpts); diff != "" {
		t.Errorf("mergeDNS (-want +got):\n%s", diff)
	}
}

// A keeper's resolv.conf holds the metadata's servers, then every link's
// live saved lease's in link name order, its own from the lease it applies.
func TestKeeperDNS(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	save := func(iface, dns string, acquired time.Time) {
		p, err := ACKToPlan(iface, testACK(t, mask(255, 255, 255, 0), dhcpv4.WithOption(dhcpv4.OptDNS(net.ParseIP(dns)))), acquired)
		if err != nil {
			t.Fatal(err)
		}
		if err := SaveLease(root, p.Links[0].Lease); err != nil {
			t.Fatal(err)
		}
	}
	save("eth0", "192.0.2.99", now)                   // the lease eth0's keeper replaces
	save("eth1", "192.0.2.54", now)                   // another link's
	save("eth2", "192.0.2.55", now.Add(-2*time.Hour)) // expired (one-hour lease)
	save("a0", "192.0.2.52", now)                     // sorts first
	if err := os.WriteFile(filepath.Join(root, LeaseDir, "lease-eth3.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	static := DNS{Servers: []netip.Addr{a("198.51.100.53")}}
	own := DNS{Servers: []netip.Addr{a("192.0.2.53"), a("192.0.2.54")}, Domain: "corp.example"}
	got := keeperDNS(root, "eth0", static, own, now)
	want := DNS{Servers: []netip.Addr{a("198.51.100.53"), a("192.0.2.52"), a("192.0.2.53"), a("192.0.2.54")}, Domain: "corp.example"}
	if diff := cmp.Diff(want, got, ipOpts); diff != "" {
		t.Errorf("keeperDNS (-want +got):\n%s", diff)
	}
	// No lease directory yet: the metadata's and its own.
	got = keeperDNS(t.TempDir(), "eth0", static, own, now)
	want = DNS{Servers: []netip.Addr{a("198.51.100.53"), a("192.0.2.53"), a("192.0.2.54")}, Domain: "corp.example"}
	if diff := cmp.Diff(want, got, ipOpts); diff != "" {
		t.Errorf("keeperDNS without saved leases (-want +got):\n%s", diff)
	}
}
