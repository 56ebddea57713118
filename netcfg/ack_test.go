package netcfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// ipOpts lets go-cmp compare netip values, whose fields are unexported.
var ipOpts = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

var (
	testMAC      = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	testAcquired = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
)

// testACK is a DHCPACK for 192.0.2.10 from 192.0.2.1 with a one-hour lease,
// changed by mods.
func testACK(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithHwAddr(testMAC),
		dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 10)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
		dhcpv4.WithLeaseTime(3600),
	}
	p, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatalf("dhcpv4.New: %v", err)
	}
	p.TransactionID = dhcpv4.TransactionID{1, 2, 3, 4}
	return p
}

func mask(a, b, c, d byte) dhcpv4.Modifier {
	return dhcpv4.WithNetmask(net.IPv4Mask(a, b, c, d))
}

func generic(code dhcpv4.OptionCode, v ...byte) dhcpv4.Modifier {
	return dhcpv4.WithGeneric(code, v)
}

func TestACKToPlanGolden(t *testing.T) {
	tests := []struct {
		name string
		mods []dhcpv4.Modifier
	}{
		{"full", []dhcpv4.Modifier{
			mask(255, 255, 255, 0),
			dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1), net.IPv4(192, 0, 2, 2))),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(192, 0, 2, 53), net.IPv4(198, 51, 100, 53))),
			dhcpv4.WithOption(dhcpv4.OptDomainName("example.net")),
			dhcpv4.WithDomainSearchList("example.net", "corp.example.net"),
			dhcpv4.WithOption(dhcpv4.OptHostName("vm-1")),
			generic(dhcpv4.OptionInterfaceMTU, 0x05, 0xaa), // 1450
			dhcpv4.WithOption(dhcpv4.OptBroadcastAddress(net.IPv4(192, 0, 2, 255))),
		}},
		{"no-netmask-classful", []dhcpv4.Modifier{
			dhcpv4.WithYourIP(net.IPv4(10, 1, 2, 3)),
			dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 0, 0, 1))),
		}},
		{"classless-beats-router", []dhcpv4.Modifier{
			mask(255, 255, 255, 0),
			dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 99))),
			// RFC 3442 §3: 0.0.0.0/0 via 192.0.2.1, 10.0.0.0/8 via 192.0.2.254, 198.51.100.0/24 on link.
			generic(dhcpv4.OptionClasslessStaticRoute,
				0, 192, 0, 2, 1,
				8, 10, 192, 0, 2, 254,
				24, 198, 51, 100, 0, 0, 0, 0),
		}},
		{"host-lease-offlink-gateway", []dhcpv4.Modifier{
			mask(255, 255, 255, 255),
			dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(203, 0, 113, 1))),
		}},
		{"classless-offlink-gateway", []dhcpv4.Modifier{
			mask(255, 255, 255, 255),
			generic(dhcpv4.OptionClasslessStaticRoute, 0, 203, 0, 113, 1),
		}},
		{"garbage-classless-falls-back", []dhcpv4.Modifier{
			mask(255, 255, 255, 0),
			dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1))),
			generic(dhcpv4.OptionClasslessStaticRoute, 33, 1, 2, 3),
		}},
		{"truncated-classless", []dhcpv4.Modifier{
			mask(255, 255, 255, 0),
			generic(dhcpv4.OptionClasslessStaticRoute, 24, 10, 0, 0, 192, 0),
		}},
		{"mtu-too-small", []dhcpv4.Modifier{mask(255, 255, 255, 0), generic(dhcpv4.OptionInterfaceMTU, 0x00, 0x44)}},
		{"mtu-too-large", []dhcpv4.Modifier{mask(255, 255, 255, 0), generic(dhcpv4.OptionInterfaceMTU, 0xff, 0xff)}},
		{"hostile-names", []dhcpv4.Modifier{
			mask(255, 255, 255, 0),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(192, 0, 2, 53), net.IPv4(0, 0, 0, 0))),
			dhcpv4.WithOption(dhcpv4.OptDomainName("evil.example\nnameserver 6.6.6.6")),
			dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{"good.example", "bad name;x"}})),
			dhcpv4.WithOption(dhcpv4.OptHostName("host;reboot")),
		}},
		{"nul-terminated-names", []dhcpv4.Modifier{
			mask(255, 255, 255, 0),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(192, 0, 2, 53))),
			generic(dhcpv4.OptionDomainName, []byte("example.org\x00")...),
			generic(dhcpv4.OptionHostName, []byte("vm-2.\x00")...),
		}},
		{"explicit-t1-t2", []dhcpv4.Modifier{
			mask(255, 255, 255, 0),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(5 * time.Second)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(8 * time.Second)),
		}},
		{"t1-after-t2", []dhcpv4.Modifier{
			mask(255, 255, 255, 0),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(3000 * time.Second)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(1000 * time.Second)),
		}},
		{"infinite-lease", []dhcpv4.Modifier{mask(255, 255, 255, 0), dhcpv4.WithLeaseTime(0xffffffff)}},
		{"bad-broadcast", []dhcpv4.Modifier{mask(255, 255, 255, 0), dhcpv4.WithOption(dhcpv4.OptBroadcastAddress(net.IPv4(10, 0, 0, 255)))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack := testACK(t, tt.mods...)
			got, err := ACKToPlan("eth0", ack, testAcquired)
			if err != nil {
				t.Fatalf("ACKToPlan: %v", err)
			}
			// The raw ACK is kept so that the keeper can rebuild this
			// plan: check that it does, then leave it out of the golden.
			raw := got.Links[0].Lease.ACK
			again, err := dhcpv4.FromBytes(raw)
			if err != nil {
				t.Fatalf("lease ACK does not parse back: %v", err)
			}
			if p2, err := ACKToPlan("eth0", again, testAcquired); err != nil || !cmp.Equal(p2, got, ipOpts) {
				t.Errorf("plan from the saved ACK differs (err %v):\n%s", err, cmp.Diff(got, p2, ipOpts))
			}
			got.Links[0].Lease.ACK = nil
			checkGolden(t, filepath.Join("testdata", "ack", tt.name+".json"), got)
		})
	}
}

// checkGolden compares v, as indented JSON, with the golden file; -update
// rewrites it.
func checkGolden(t *testing.T, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("write golden: %v", err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

func TestACKToPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		mods []dhcpv4.Modifier
	}{
		{"zero-lease", []dhcpv4.Modifier{mask(255, 255, 255, 0), dhcpv4.WithLeaseTime(0)}},
		{"no-lease", []dhcpv4.Modifier{mask(255, 255, 255, 0), dhcpv4.WithoutOption(dhcpv4.OptionIPAddressLeaseTime)}},
		{"short-lease-option", []dhcpv4.Modifier{mask(255, 255, 255, 0), generic(dhcpv4.OptionIPAddressLeaseTime, 1, 2)}},
		{"non-contiguous-mask", []dhcpv4.Modifier{mask(255, 0, 255, 0)}},
		{"zero-mask", []dhcpv4.Modifier{mask(0, 0, 0, 0)}},
		{"short-mask", []dhcpv4.Modifier{generic(dhcpv4.OptionSubnetMask, 255, 255)}},
		{"no-yiaddr", []dhcpv4.Modifier{mask(255, 255, 255, 0), dhcpv4.WithYourIP(net.IPv4zero)}},
		{"broadcast-yiaddr", []dhcpv4.Modifier{mask(255, 255, 255, 0), dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 255))}},
		{"class-d-no-mask", []dhcpv4.Modifier{dhcpv4.WithYourIP(net.IPv4(230, 0, 0, 1))}},
		{"no-server-id", []dhcpv4.Modifier{mask(255, 255, 255, 0), dhcpv4.WithoutOption(dhcpv4.OptionServerIdentifier)}},
		{"nak", []dhcpv4.Modifier{mask(255, 255, 255, 0), dhcpv4.WithMessageType(dhcpv4.MessageTypeNak)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ACKToPlan("eth0", testACK(t, tt.mods...), testAcquired)
			if !errors.Is(err, ErrBadACK) {
				t.Fatalf("ACKToPlan error = %v, want ErrBadACK; plan %+v", err, got)
			}
		})
	}
}

func TestParseClasslessRoutes(t *testing.T) {
	gw := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name    string
		in      []byte
		want    []Route
		wantErr bool
	}{
		{"empty", nil, nil, false},
		{"default", []byte{0, 10, 0, 0, 1}, []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: gw}}, false},
		{"host-bits-cleared", []byte{9, 10, 255, 10, 0, 0, 1}, []Route{{Dst: netip.MustParsePrefix("10.128.0.0/9"), Gateway: gw}}, false},
		{"host-route", []byte{32, 1, 2, 3, 4, 10, 0, 0, 1}, []Route{{Dst: netip.MustParsePrefix("1.2.3.4/32"), Gateway: gw}}, false},
		{"on-link", []byte{24, 192, 168, 1, 0, 0, 0, 0}, []Route{{Dst: netip.MustParsePrefix("192.168.1.0/24")}}, false},
		{"width-33", []byte{33, 1, 2, 3, 4, 5, 10, 0, 0, 1}, nil, true},
		{"truncated", []byte{24, 10, 0}, nil, true},
		{"broadcast-router", []byte{0, 255, 255, 255, 255}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClasslessRoutes(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseClasslessRoutes error = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, ipOpts); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzACKToPlan(f *testing.F) {
	f.Add(testACK(f, mask(255, 255, 255, 0), generic(dhcpv4.OptionClasslessStaticRoute, 0, 192, 0, 2, 1)).ToBytes())
	f.Add(testACK(f, mask(255, 255, 255, 255), dhcpv4.WithDomainSearchList("a.example", "b.example")).ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		ack, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		p, err := ACKToPlan("eth0", ack, testAcquired)
		if err != nil {
			if !errors.Is(err, ErrBadACK) {
				t.Fatalf("error does not wrap ErrBadACK: %v", err)
			}
			return
		}
		lp := p.Links[0]
		a := lp.Addrs[0].Prefix
		if !a.IsValid() || !a.Addr().Is4() || a.Bits() == 0 {
			t.Fatalf("bad address %v", a)
		}
		if lp.MTU != 0 && (lp.MTU < minMTU || lp.MTU > maxMTU) {
			t.Fatalf("MTU %d out of bounds", lp.MTU)
		}
		for _, r := range lp.Routes {
			if !r.Dst.IsValid() || (r.Gateway.IsValid() && !usableHost(r.Gateway)) {
				t.Fatalf("bad route %+v", r)
			}
		}
		names := append([]string{lp.DNS.Domain, lp.Lease.Hostname}, lp.DNS.Search...)
		for _, n := range names {
			if n != "" {
				if _, ok := dnsName([]byte(n)); !ok {
					t.Fatalf("invalid name %q let through", n)
				}
			}
		}
		if l := lp.Lease; !(0 < l.T1 && l.T1 <= l.T2 && l.T2 <= l.Duration) {
			t.Fatalf("lease times out of order: %+v", l)
		}
	})
}
