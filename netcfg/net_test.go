package netcfg

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWithLease(t *testing.T) {
	v6 := Addr{Prefix: netip.MustParsePrefix("2001:db8::10/64")}
	v6route := Route{Dst: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("2001:db8::1")}
	meta := LinkPlan{
		Name: "eth0", Method: MethodDHCP, MTU: 1450,
		Addrs:  []Addr{v6, {Prefix: netip.MustParsePrefix("192.0.2.99/24")}},
		Routes: []Route{v6route},
		IPv6:   []Method{MethodKernel},
	}
	v4 := Addr{Prefix: netip.MustParsePrefix("192.0.2.10/24")}
	v4route := Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("192.0.2.1")}
	lease := LinkPlan{Name: "eth0", Method: MethodDHCP, Source: "dhcp", Addrs: []Addr{v4}, Routes: []Route{v4route}}
	tests := []struct {
		name  string
		lease LinkPlan
		want  LinkPlan
	}{
		{"metadata MTU kept", lease, LinkPlan{
			Name: "eth0", Method: MethodDHCP, Source: "dhcp", MTU: 1450,
			Addrs: []Addr{v4, v6}, Routes: []Route{v4route, v6route}, IPv6: []Method{MethodKernel},
		}},
		{"lease MTU wins", func() LinkPlan { l := lease; l.MTU = 1400; return l }(), LinkPlan{
			Name: "eth0", Method: MethodDHCP, Source: "dhcp", MTU: 1400,
			Addrs: []Addr{v4, v6}, Routes: []Route{v4route, v6route}, IPv6: []Method{MethodKernel},
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
