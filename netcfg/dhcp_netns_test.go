package netcfg

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/notos-agent/notos-agent/internal/netnstest"
)

// Tier 1: the DHCP client against a real dnsmasq, in namespaces made by
// internal/netnstest. The library runs in the client namespace on a locked
// thread (sockets belong to the namespace they are opened in).

// inNetns runs f with the calling thread in the namespace ns.
func inNetns(t *testing.T, ns *netnstest.NS, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns.Name)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("open netns %s: %v", ns.Name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter netns %s: %v", ns.Name, err)
	}
	defer func() {
		// A thread that cannot go back stays locked and dies with the
		// goroutine, so no other code runs in the test's namespace.
		if err := netns.Set(orig); err != nil {
			t.Errorf("leave netns %s: %v", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
}

const dhcpRange = "--dhcp-range=10.77.0.10,10.77.0.50,255.255.255.0,2m"

func quietDHCP() DHCPOptions { return DHCPOptions{InitialDelay: -1} }

func TestDHCPDORA(t *testing.T) {
	ns := netnstest.New(t)
	srv := netnstest.StartDnsmasq(t, ns, dhcpRange,
		"--dhcp-option=3,10.77.0.1", "--dhcp-option=6,10.77.0.53,10.77.0.54",
		"--dhcp-option=119,corp.example,example", "--dhcp-option=15,corp.example",
		"--dhcp-option=26,1400")
	var p Plan
	var err error
	inNetns(t, ns, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		o := quietDHCP()
		o.Hostname = "vm-test"
		p, err = AcquireLease(ctx, "eth0", o)
	})
	if err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	lp := p.Links[0]
	a := lp.Addrs[0].Prefix
	if !netip.MustParsePrefix("10.77.0.0/24").Contains(a.Addr()) || a.Bits() != 24 {
		t.Errorf("address %s, want one in 10.77.0.10-50/24", a)
	}
	if len(lp.Routes) != 1 || lp.Routes[0].Gateway.String() != "10.77.0.1" {
		t.Errorf("routes %+v, want default via 10.77.0.1", lp.Routes)
	}
	if got := lp.DNS; len(got.Servers) != 2 || got.Domain != "corp.example" || strings.Join(got.Search, " ") != "corp.example example" {
		t.Errorf("DNS %+v, want 2 servers, domain and search corp.example example", got)
	}
	if lp.MTU != 1400 {
		t.Errorf("MTU %d, want 1400", lp.MTU)
	}
	if lp.Lease.Server.String() != "10.77.0.1" || lp.Lease.Duration != 2*time.Minute {
		t.Errorf("lease %+v, want server 10.77.0.1 for 2m", lp.Lease)
	}
	// The client identifier and host name reached the server.
	if _, err := srv.WaitFor(5*time.Second, "client provides name: vm-test"); err != nil {
		t.Error(err)
	}
	if _, err := srv.WaitFor(5*time.Second, "DHCPACK(srv0) "+a.Addr().String()); err != nil {
		t.Error(err)
	}
}

func TestDHCPNoServer(t *testing.T) {
	ns := netnstest.New(t)
	var err error
	start := time.Now()
	inNetns(t, ns, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		_, err = AcquireLease(ctx, "eth0", quietDHCP())
	})
	took := time.Since(start)
	if !errors.Is(err, ErrNoAnswer) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AcquireLease with no server: %v, want ErrNoAnswer and DeadlineExceeded", err)
	}
	if took > 3*time.Second {
		t.Errorf("AcquireLease took %s with a 1.5s deadline", took)
	}
}

// leaseOn acquires a lease in ns and puts its address on eth0, as the
// keeper finds it after `net`.
func leaseOn(t *testing.T, ns *netnstest.NS) *Lease {
	t.Helper()
	var p Plan
	var err error
	inNetns(t, ns, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err = AcquireLease(ctx, "eth0", quietDHCP())
	})
	if err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	l := p.Links[0].Lease
	ns.Run(t, "ip", "addr", "add", l.Address.String(), "dev", "eth0")
	return l
}

func TestDHCPRenewingAndRebinding(t *testing.T) {
	ns := netnstest.New(t)
	srv := netnstest.StartDnsmasq(t, ns, dhcpRange)
	l := leaseOn(t, ns)
	e := &DHCPExchanger{Iface: "eth0", Options: quietDHCP()}
	for _, kind := range []RequestKind{Renewing, Rebinding} {
		t.Run(kind.String(), func(t *testing.T) {
			before := srv.Count("DHCPACK(srv0) " + l.Address.Addr().String())
			var err error
			inNetns(t, ns, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err = e.Request(ctx, kind, l)
			})
			if err != nil {
				t.Fatalf("Request(%s): %v", kind, err)
			}
			// The client has the ACK; dnsmasq's log line may still be on
			// its way through the pipe.
			ack := "DHCPACK(srv0) " + l.Address.Addr().String()
			if err := srv.WaitCount(5*time.Second, ack, before+1); err != nil {
				t.Error(err)
			}
			if got := srv.Count(ack); got != before+1 {
				t.Errorf("dnsmasq ACKs for %s: %d, want %d", l.Address.Addr(), got, before+1)
			}
		})
	}
	// dnsmasq logs the source of a unicast renewal as the leased address:
	// "DHCPREQUEST(srv0) <ip>" with ciaddr set. Count once its whole log
	// is read: Stop returns only then.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := srv.Count("DHCPREQUEST(srv0) " + l.Address.Addr().String()); n < 3 {
		t.Errorf("dnsmasq saw %d REQUESTs for %s, want 3 (SELECTING, RENEWING, REBINDING)", n, l.Address.Addr())
	}
}

func TestDHCPNAK(t *testing.T) {
	ns := netnstest.New(t)
	// Authoritative: a REQUEST for an address the server does not hand
	// out gets a NAK (RFC 2131 §4.3.2 INIT-REBOOT).
	netnstest.StartDnsmasq(t, ns, dhcpRange, "--dhcp-authoritative")
	l := &Lease{Interface: "eth0", Address: netip.MustParsePrefix("10.77.0.200/24"), Server: netip.MustParseAddr("10.77.0.1")}
	e := &DHCPExchanger{Iface: "eth0", Options: quietDHCP()}
	var err error
	inNetns(t, ns, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = e.Request(ctx, InitReboot, l)
	})
	if !errors.Is(err, ErrNAK) {
		t.Errorf("INIT-REBOOT for an address outside the range: %v, want ErrNAK", err)
	}
}
