package main

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/notos-agent/notos-agent/internal/netnstest"
	"github.com/notos-agent/notos-agent/internal/testenv"
	"github.com/notos-agent/notos-agent/netcfg"
)

// Tier 0: usage errors never touch the network.
func TestNetUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"release without keep", []string{"--release"}},
		{"bad mode", []string{"--net", "sometimes"}},
		{"bad resolv-conf", []string{"--resolv-conf", "maybe"}},
		{"empty iface", []string{"--iface", ""}},
		{"argument", []string{"eth0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := cmdNet(tt.args, &stdout, &stderr); got != 2 {
				t.Errorf("cmdNet(%q) = %d, want 2\nstderr: %s", tt.args, got, stderr.String())
			}
		})
	}
}

// Tier 1: the real binary under `ip netns exec` against a real dnsmasq.

const netRange = "--dhcp-range=10.77.0.10,10.77.0.50,255.255.255.0,2m"

// agentProc is a notos-agent process whose stderr is collected line by line.
type agentProc struct {
	*netnstest.Proc
	stdout bytes.Buffer
}

// startAgent runs the binary with args inside ns; t.Cleanup kills it.
func startAgent(t *testing.T, ns *netnstest.NS, bin string, args ...string) *agentProc {
	t.Helper()
	a := &agentProc{}
	cmd := ns.Exec(bin, args...)
	cmd.Stdout = &a.stdout
	p, err := netnstest.StartProc(fmt.Sprintf("notos-agent %q", args), cmd)
	if err != nil {
		t.Fatal(err)
	}
	a.Proc = p
	t.Cleanup(func() {
		p.Stop(syscall.SIGKILL, 10*time.Second)
		if t.Failed() {
			t.Logf("notos-agent %q stderr:\n%s", args, strings.Join(a.Lines(), "\n"))
		}
	})
	return a
}

// waitFor waits for a stderr line containing substr, waking on each line.
func (a *agentProc) waitFor(t *testing.T, timeout time.Duration, substr string) string {
	t.Helper()
	l, err := a.WaitFor(timeout, substr)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// stop sends SIGTERM and waits for the exit; it returns the exit status.
func (a *agentProc) stop(t *testing.T) error {
	t.Helper()
	if err := a.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return a.Err()
}

// runNet runs `net` to completion and returns its exit code and output.
func runNet(t *testing.T, ns *netnstest.NS, bin string, args ...string) (int, string, string) {
	t.Helper()
	a := startAgent(t, ns, bin, append([]string{"net"}, args...)...)
	select {
	case <-a.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("notos-agent net %q did not exit", args)
	}
	code := 0
	if err := a.Err(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("notos-agent net: %v", err)
		}
		code = ee.ExitCode()
	}
	return code, a.stdout.String(), strings.Join(a.Lines(), "\n")
}

// v4 returns eth0's IPv4 addresses in ns.
func v4(t *testing.T, ns *netnstest.NS) []netnstest.AddrInfo {
	var out []netnstest.AddrInfo
	for _, l := range ns.Addrs(t, "dev", "eth0") {
		for _, a := range l.Addrs {
			if a.Family == "inet" {
				out = append(out, a)
			}
		}
	}
	return out
}

// routeSet renders `ip -j route` entries as "dst via gw" strings.
func routeSet(t *testing.T, ns *netnstest.NS) []string {
	var out []string
	for _, r := range ns.Routes(t, "dev", "eth0") {
		if r.Protocol == "kernel" {
			continue // the prefix route the kernel adds with the address
		}
		s := r.Dst
		if r.Gateway != "" {
			s += " via " + r.Gateway
		}
		out = append(out, s)
	}
	return out
}

func netRoot(t *testing.T) string {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestNetDHCP(t *testing.T) {
	ns := netnstest.New(t)
	bin := testenv.AgentBinary(t)
	netnstest.StartDnsmasq(t, ns, netRange,
		"--dhcp-option=3,10.77.0.1", "--dhcp-option=6,10.77.0.53",
		"--dhcp-option=15,corp.example", "--dhcp-option=119,corp.example,example.net",
		"--dhcp-option=26,1400")
	root := netRoot(t)
	// Twice: the second run leaves exactly one of everything.
	for run := 1; run <= 2; run++ {
		code, out, errs := runNet(t, ns, bin, "--iface", "eth0", "--net", "dhcp", "--root", root, "--timeout", "20s")
		if code != 0 {
			t.Fatalf("run %d: exit %d\nstdout: %s\nstderr: %s", run, code, out, errs)
		}
		if !strings.Contains(out, "net eth0 dhcp 10.77.0.") || !strings.Contains(out, "default via 10.77.0.1, mtu 1400, dns 10.77.0.53") {
			t.Errorf("run %d: stdout %q, want the link line with address, gateway, MTU and DNS", run, out)
		}
		addrs := v4(t, ns)
		if len(addrs) != 1 || !strings.HasPrefix(addrs[0].Local, "10.77.0.") || addrs[0].PrefixLen != 24 {
			t.Fatalf("run %d: addresses %+v, want one 10.77.0.x/24", run, addrs)
		}
		// The address lives as long as the lease (2m), not forever.
		if v := addrs[0].Valid; v == 0 || v > 120 {
			t.Errorf("run %d: valid lifetime %d s, want at most the 120 s lease", run, v)
		}
		if got := routeSet(t, ns); strings.Join(got, ",") != "default via 10.77.0.1" {
			t.Errorf("run %d: routes %q, want [default via 10.77.0.1]", run, got)
		}
		if l := ns.Links(t, "dev", "eth0"); len(l) != 1 || l[0].MTU != 1400 {
			t.Errorf("run %d: link %+v, want MTU 1400", run, l)
		}
	}
	conf, err := os.ReadFile(filepath.Join(root, "etc/resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nameserver 10.77.0.53", "search corp.example example.net"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, conf)
		}
	}
	l, err := netcfg.LoadLease(root, "eth0")
	if err != nil {
		t.Fatalf("saved lease: %v", err)
	}
	if l.Server.String() != "10.77.0.1" || l.Duration != 2*time.Minute || len(l.ACK) == 0 {
		t.Errorf("saved lease %+v, want server 10.77.0.1, 2m, the raw ACK", l)
	}
}

func TestNetRoutes(t *testing.T) {
	tests := []struct {
		name    string
		options []string
		want    string
		prefix  int
	}{
		{
			// RFC 3442: option 121 wins over option 3.
			"classless beats router",
			[]string{"--dhcp-option=3,10.77.0.99", "--dhcp-option=121,10.99.0.0/16,10.77.0.254,0.0.0.0/0,10.77.0.1"},
			"default via 10.77.0.1,10.99.0.0/16 via 10.77.0.254", 24,
		},
		{
			// A /32 lease: the gateway is off-link and gets a host route first.
			"host lease offlink gateway",
			[]string{"--dhcp-option=1,255.255.255.255", "--dhcp-option=3,10.77.0.1"},
			"default via 10.77.0.1,10.77.0.1", 32,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := netnstest.New(t)
			bin := testenv.AgentBinary(t)
			netnstest.StartDnsmasq(t, ns, append([]string{netRange}, tt.options...)...)
			code, out, errs := runNet(t, ns, bin, "--iface", "eth0", "--net", "dhcp", "--root", netRoot(t), "--timeout", "20s")
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
			}
			if a := v4(t, ns); len(a) != 1 || a[0].PrefixLen != tt.prefix {
				t.Errorf("addresses %+v, want one /%d", a, tt.prefix)
			}
			got := routeSet(t, ns)
			if strings.Join(got, ",") != tt.want {
				t.Errorf("routes %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNetNoServer(t *testing.T) {
	ns := netnstest.New(t)
	bin := testenv.AgentBinary(t)
	start := time.Now()
	code, out, errs := runNet(t, ns, bin, "--iface", "eth0", "--net", "dhcp", "--root", netRoot(t), "--timeout", "2s")
	took := time.Since(start)
	if code != 1 {
		t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if !strings.Contains(errs, "no answer from a DHCP server") || !strings.Contains(out, "eth0: not configured") {
		t.Errorf("output does not say why:\nstdout: %s\nstderr: %s", out, errs)
	}
	if took > 5*time.Second {
		t.Errorf("took %s with --timeout 2s", took)
	}
}

// keepSetup makes a namespace pair with dnsmasq started with args, and
// runs `net` once so that a lease is saved under a new root.
func keepSetup(t *testing.T, args ...string) (*netnstest.NS, string, *netnstest.Dnsmasq, string, *netcfg.Lease) {
	t.Helper()
	ns := netnstest.New(t)
	bin := testenv.AgentBinary(t)
	srv := netnstest.StartDnsmasq(t, ns, append([]string{netRange}, args...)...)
	root := netRoot(t)
	return ns, bin, srv, root, saveLease(t, ns, bin, root)
}

// saveLease runs `net` once so that a lease is saved under root.
func saveLease(t *testing.T, ns *netnstest.NS, bin, root string) *netcfg.Lease {
	t.Helper()
	if code, out, errs := runNet(t, ns, bin, "--iface", "eth0", "--net", "dhcp", "--root", root, "--timeout", "20s"); code != 0 {
		t.Fatalf("net: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	l, err := netcfg.LoadLease(root, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNetKeepTakesOverAndRenews(t *testing.T) {
	// T1 2 s, T2 4 s (RFC 2132 options 58, 59), lease 2 min.
	ns, bin, srv, root, l := keepSetup(t, "--dhcp-option=58,2", "--dhcp-option=59,4")
	discovers, _ := firstRunCounts(t, srv, l)
	ack := "DHCPACK(srv0) " + l.Address.Addr().String()
	acks := srv.Count(ack)

	a := startAgent(t, ns, bin, "net", "--iface", "eth0", "--net", "dhcp", "--root", root, "--keep", "--release")
	a.waitFor(t, 10*time.Second, "took over lease of "+l.Address.String())
	a.waitFor(t, 10*time.Second, "RENEWING: asking 10.77.0.1")
	// The unicast renewal from the leased address is answered.
	if _, err := srv.WaitFor(10*time.Second, "DHCPREQUEST(srv0) "+l.Address.Addr().String()); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, 10*time.Second, "bound to "+l.Address.String())
	// The agent has its ACK; dnsmasq's log line may still be in the pipe.
	if err := srv.WaitCount(10*time.Second, ack, acks+1); err != nil {
		t.Errorf("after the renewal: %v", err)
	}
	if got := srv.Count("DHCPDISCOVER"); got != discovers {
		t.Errorf("DISCOVERs: %d after --keep, want %d: the saved lease must be taken over", got, discovers)
	}
	// --release: DHCPRELEASE on SIGTERM, and the address goes.
	if err := a.stop(t); err != nil {
		t.Errorf("keeper exit: %v", err)
	}
	if _, err := srv.WaitFor(5*time.Second, "DHCPRELEASE(srv0) "+l.Address.Addr().String()); err != nil {
		t.Error(err)
	}
	if addrs := v4(t, ns); len(addrs) != 0 {
		t.Errorf("addresses after release: %+v, want none", addrs)
	}
}

func TestNetKeepRebindsThenExpires(t *testing.T) {
	ns, bin, srv, root, l := keepSetup(t, "--dhcp-option=3,10.77.0.1")
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// The saved lease ends in 4 s, T1 and T2 passed: the keeper rebinds
	// (no server answers), then removes the address and route at expiry.
	l.Acquired = time.Now().Add(-l.Duration + 4*time.Second)
	l.T1, l.T2 = l.Duration-6*time.Second, l.Duration-5*time.Second
	if err := netcfg.SaveLease(root, l); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, ns, bin, "net", "--iface", "eth0", "--net", "dhcp", "--root", root, "--keep")
	a.waitFor(t, 10*time.Second, "took over lease of "+l.Address.String())
	a.waitFor(t, 10*time.Second, "REBINDING: asking any server")
	a.waitFor(t, 15*time.Second, "expired")
	if addrs := v4(t, ns); len(addrs) != 0 {
		t.Errorf("addresses after expiry: %+v, want none", addrs)
	}
	if got := routeSet(t, ns); len(got) != 0 {
		t.Errorf("routes after expiry: %q, want none", got)
	}
	if _, err := netcfg.LoadLease(root, "eth0"); err == nil {
		t.Errorf("lease file still there after expiry")
	}
	if err := a.stop(t); err != nil {
		t.Errorf("keeper exit: %v", err)
	}
}

func TestNetKeepNAK(t *testing.T) {
	ns, bin, srv, root, l := keepSetup(t, "--dhcp-authoritative")
	// A saved lease for an address the server never gave, due for
	// renewal: the authoritative server NAKs, the keeper starts over.
	ack, err := dhcpv4.FromBytes(l.ACK)
	if err != nil {
		t.Fatal(err)
	}
	ack.YourIPAddr = net.IPv4(10, 77, 0, 200)
	bogus := *l
	bogus.Address = netip.MustParsePrefix("10.77.0.200/24")
	bogus.ACK = ack.ToBytes()
	bogus.Acquired = time.Now().Add(-bogus.T1)
	if err := netcfg.SaveLease(root, &bogus); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "ip", "addr", "flush", "dev", "eth0")
	a := startAgent(t, ns, bin, "net", "--iface", "eth0", "--net", "dhcp", "--root", root, "--keep")
	a.waitFor(t, 10*time.Second, "took over lease of 10.77.0.200/24")
	a.waitFor(t, 10*time.Second, "DHCPNAK")
	if _, err := srv.WaitFor(5*time.Second, "DHCPNAK(srv0) 10.77.0.200"); err != nil {
		t.Error(err)
	}
	line := a.waitFor(t, 15*time.Second, "bound to 10.77.0.")
	if strings.Contains(line, "10.77.0.200") {
		t.Errorf("bound again to the NAKed address: %s", line)
	}
	for _, ad := range v4(t, ns) {
		if ad.Local == "10.77.0.200" {
			t.Errorf("NAKed address 10.77.0.200 still on eth0")
		}
	}
	a.stop(t)
}

func TestNetKeepLinkDownUp(t *testing.T) {
	ns, bin, srv, root, l := keepSetup(t, "--dhcp-option=3,10.77.0.1")
	ip := l.Address.Addr().String()
	a := startAgent(t, ns, bin, "net", "--iface", "eth0", "--net", "dhcp", "--root", root, "--keep")
	a.waitFor(t, 10*time.Second, "took over lease of "+l.Address.String())
	_, requests := firstRunCounts(t, srv, l)
	// The kernel drops the link's routes when it goes down; the keeper
	// confirms the lease by INIT-REBOOT (RFC 2131 §3.2) once it is back,
	// and puts them back.
	ns.Run(t, "ip", "link", "set", "eth0", "down")
	a.waitFor(t, 10*time.Second, "link down")
	ns.Run(t, "ip", "link", "set", "eth0", "up")
	a.waitFor(t, 10*time.Second, "INIT-REBOOT: confirming "+l.Address.String())
	a.waitFor(t, 10*time.Second, "bound to "+l.Address.String())
	if err := srv.WaitCount(10*time.Second, "DHCPREQUEST(srv0) "+ip, requests+1); err != nil {
		t.Error(err)
	}
	if got := srv.Count("DHCPREQUEST(srv0) " + ip); got != requests+1 {
		t.Errorf("dnsmasq REQUESTs for %s: %d, want %d", ip, got, requests+1)
	}
	if got := routeSet(t, ns); strings.Join(got, ",") != "default via 10.77.0.1" {
		t.Errorf("routes after INIT-REBOOT: %q, want [default via 10.77.0.1]", got)
	}
	if err := a.stop(t); err != nil {
		t.Errorf("keeper exit: %v", err)
	}
}

func TestNetKeepRebindAnswered(t *testing.T) {
	// T1 2 s, T2 4 s. The server that granted the lease is gone: the
	// unicast RENEWING request to 10.77.0.1 finds nobody. Another server,
	// 10.77.0.2 with the same leases, answers the broadcast REBINDING
	// request (RFC 2131 §4.4.5: any server may extend the lease).
	opts := []string{"--dhcp-option=58,2", "--dhcp-option=59,4"}
	ns, bin, srv, root, l := keepSetup(t, opts...)
	ip := l.Address.Addr().String()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	ns.Peer.Run(t, "ip", "addr", "del", "10.77.0.1/24", "dev", netnstest.ServerLink)
	ns.Peer.Run(t, "ip", "addr", "add", "10.77.0.2/24", "dev", netnstest.ServerLink)
	srv2 := netnstest.StartDnsmasq(t, ns, append([]string{netRange, "--dhcp-leasefile=" + srv.LeaseFile}, opts...)...)
	a := startAgent(t, ns, bin, "net", "--iface", "eth0", "--net", "dhcp", "--root", root, "--keep")
	a.waitFor(t, 10*time.Second, "took over lease of "+l.Address.String())
	a.waitFor(t, 10*time.Second, "RENEWING: asking 10.77.0.1")
	a.waitFor(t, 10*time.Second, "REBINDING: asking any server")
	a.waitFor(t, 10*time.Second, "bound to "+l.Address.String()+" from 10.77.0.2")
	if _, err := srv2.WaitFor(5*time.Second, "DHCPACK(srv0) "+ip); err != nil {
		t.Error(err)
	}
	if addrs := v4(t, ns); len(addrs) != 1 || addrs[0].Local != ip {
		t.Errorf("addresses after rebinding: %+v, want %s", addrs, ip)
	}
	if err := a.stop(t); err != nil {
		t.Errorf("keeper exit: %v", err)
	}
}

// twoLinks makes a namespace pair with a second link, eth1, on its own
// subnet served by the same dnsmasq (started with args added), each
// link's lease with its own DNS server.
func twoLinks(t *testing.T, args ...string) *netnstest.NS {
	t.Helper()
	ns := netnstest.New(t)
	ns.AddVeth(t, "eth1", "", "srv1")
	ns.Peer.Run(t, "ip", "addr", "add", "10.88.0.1/24", "dev", "srv1")
	ns.Peer.Run(t, "ip", "link", "set", "srv1", "up")
	ns.Run(t, "ip", "link", "set", "eth1", "up")
	netnstest.StartDnsmasq(t, ns, append([]string{netRange, "--interface=srv1",
		"--dhcp-range=10.88.0.10,10.88.0.50,255.255.255.0,2m",
		"--dhcp-option=tag:srv0,6,10.77.0.53", "--dhcp-option=tag:srv1,6,10.88.0.53"}, args...)...)
	return ns
}

func TestNetTwoLinks(t *testing.T) {
	ns := twoLinks(t)
	bin := testenv.AgentBinary(t)
	root := netRoot(t)
	code, out, errs := runNet(t, ns, bin, "--iface", "eth0", "--iface", "eth1", "--net", "dhcp", "--root", root, "--timeout", "20s")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "net eth0 dhcp 10.77.0.") || !strings.HasPrefix(lines[1], "net eth1 dhcp 10.88.0.") {
		t.Errorf("stdout %q, want eth0's line, eth1's line, then resolv.conf", lines)
	}
	for link, prefix := range map[string]string{"eth0": "10.77.0.", "eth1": "10.88.0."} {
		var got []string
		for _, l := range ns.Addrs(t, "dev", link) {
			for _, a := range l.Addrs {
				if a.Family == "inet" {
					got = append(got, a.Local)
				}
			}
		}
		if len(got) != 1 || !strings.HasPrefix(got[0], prefix) {
			t.Errorf("%s addresses %q, want one %sx", link, got, prefix)
		}
		if _, err := netcfg.LoadLease(root, link); err != nil {
			t.Errorf("lease of %s: %v", link, err)
		}
	}
	// Both default routes stand, each with its link's metric: the second
	// lease does not replace the first's.
	var defaults []string
	for _, r := range ns.Routes(t) {
		if r.Dst == "default" {
			defaults = append(defaults, fmt.Sprintf("%s via %s metric %d", r.Dev, r.Gateway, r.Metric))
		}
	}
	if len(defaults) != 2 || !strings.HasPrefix(defaults[0], "eth0 via 10.77.0.1 metric 10") || !strings.HasPrefix(defaults[1], "eth1 via 10.88.0.1 metric 10") {
		t.Errorf("default routes %q, want one per link, eth0's first", defaults)
	}
	conf, err := os.ReadFile(filepath.Join(root, "etc/resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "nameserver 10.77.0.53\nnameserver 10.88.0.53") {
		t.Errorf("resolv.conf does not list both links' servers in link order:\n%s", conf)
	}
}

// A rerun on a booted system (issue 5) asks for the saved lease again by
// INIT-REBOOT (RFC 2131 §3.2): no DISCOVER, one address, one default route.
func TestNetRerunInitReboot(t *testing.T) {
	ns, bin, srv, root, l := keepSetup(t, "--dhcp-option=3,10.77.0.1")
	ip := l.Address.Addr().String()
	discovers, requests := firstRunCounts(t, srv, l)
	code, out, errs := runNet(t, ns, bin, "--iface", "eth0", "--net", "dhcp", "--root", root, "--timeout", "20s")
	if code != 0 {
		t.Fatalf("rerun: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	stopForCounts(t, srv)
	if got := srv.Count("DHCPDISCOVER"); got != discovers {
		t.Errorf("DISCOVERs: %d after the rerun, want %d", got, discovers)
	}
	if got := srv.Count("DHCPREQUEST(srv0) " + ip); got != requests+1 {
		t.Errorf("REQUESTs for %s: %d after the rerun, want %d (one INIT-REBOOT)", ip, got, requests+1)
	}
	if !strings.Contains(out, "(renewed lease 2m0s from 10.77.0.1)") {
		t.Errorf("stdout %q does not say the lease was renewed", out)
	}
	if a := v4(t, ns); len(a) != 1 || a[0].Local != ip {
		t.Errorf("addresses %+v, want only %s", a, ip)
	}
	if got := routeSet(t, ns); strings.Join(got, ",") != "default via 10.77.0.1" {
		t.Errorf("routes %q, want [default via 10.77.0.1]", got)
	}
	nl, err := netcfg.LoadLease(root, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if nl.Address != l.Address || !nl.Acquired.After(l.Acquired) {
		t.Errorf("saved lease %s acquired %s, want %s acquired after %s", nl.Address, nl.Acquired, l.Address, l.Acquired)
	}
}

// A rerun whose server no longer hands out the saved address: the
// authoritative server NAKs the INIT-REBOOT, DORA gets another address,
// and the old address and its routes are gone.
func TestNetRerunAddressChanged(t *testing.T) {
	ns, bin, srv, root, l := keepSetup(t, "--dhcp-option=121,10.99.0.0/16,10.77.0.254,0.0.0.0/0,10.77.0.1")
	old := l.Address.Addr().String()
	if got := routeSet(t, ns); strings.Join(got, ",") != "default via 10.77.0.1,10.99.0.0/16 via 10.77.0.254" {
		t.Fatalf("routes after the first run %q, want the default and 10.99.0.0/16", got)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	srv2 := netnstest.StartDnsmasq(t, ns, "--dhcp-range=10.77.0.60,10.77.0.90,255.255.255.0,2m",
		"--dhcp-authoritative", "--dhcp-option=3,10.77.0.1")
	code, out, errs := runNet(t, ns, bin, "--iface", "eth0", "--net", "dhcp", "--root", root, "--timeout", "20s")
	if code != 0 {
		t.Fatalf("rerun: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	stopForCounts(t, srv2)
	if srv2.Count("DHCPNAK(srv0) "+old) != 1 || srv2.Count("DHCPDISCOVER") != 1 {
		t.Errorf("dnsmasq log: want one NAK for %s, then one DISCOVER:\n%s", old, strings.Join(srv2.Lines(), "\n"))
	}
	a := v4(t, ns)
	if len(a) != 1 || a[0].Local == old || !strings.HasPrefix(a[0].Local, "10.77.0.") {
		t.Fatalf("addresses %+v, want one new address instead of %s", a, old)
	}
	if !strings.Contains(out, "(new lease 2m0s from 10.77.0.1, replacing "+l.Address.String()+")") {
		t.Errorf("stdout %q does not say the lease replaced %s", out, l.Address)
	}
	if got := routeSet(t, ns); strings.Join(got, ",") != "default via 10.77.0.1" {
		t.Errorf("routes %q, want only [default via 10.77.0.1]", got)
	}
	if nl, err := netcfg.LoadLease(root, "eth0"); err != nil || nl.Address.Addr().String() != a[0].Local {
		t.Errorf("saved lease %+v (%v), want %s", nl, err, a[0].Local)
	}
}

// A rerun with an expired saved lease goes straight to DISCOVER.
func TestNetRerunExpiredLease(t *testing.T) {
	ns, bin, srv, root, l := keepSetup(t, "--dhcp-option=3,10.77.0.1")
	l.Acquired = time.Now().Add(-l.Duration - time.Second)
	if err := netcfg.SaveLease(root, l); err != nil {
		t.Fatal(err)
	}
	discovers, requests := firstRunCounts(t, srv, l)
	code, out, errs := runNet(t, ns, bin, "--iface", "eth0", "--net", "dhcp", "--root", root, "--timeout", "20s")
	if code != 0 {
		t.Fatalf("rerun: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	stopForCounts(t, srv)
	// One DISCOVER and its one REQUEST (SELECTING): no INIT-REBOOT first.
	if d, r := srv.Count("DHCPDISCOVER")-discovers, srv.Count("DHCPREQUEST(srv0) "+l.Address.Addr().String())-requests; d != 1 || r != 1 {
		t.Errorf("rerun sent %d DISCOVERs and %d REQUESTs, want 1 and 1", d, r)
	}
	if !strings.Contains(errs, "expired") || !strings.Contains(out, "(new lease 2m0s") {
		t.Errorf("output does not say the saved lease expired and a new one was had:\nstdout: %s\nstderr: %s", out, errs)
	}
	if a := v4(t, ns); len(a) != 1 {
		t.Errorf("addresses %+v, want one", a)
	}
	if got := routeSet(t, ns); strings.Join(got, ",") != "default via 10.77.0.1" {
		t.Errorf("routes %q, want [default via 10.77.0.1]", got)
	}
}

// firstRunCounts waits until dnsmasq's log holds the first run's ACK for
// l (its DISCOVER and REQUEST come before it), then counts them.
func firstRunCounts(t *testing.T, srv *netnstest.Dnsmasq, l *netcfg.Lease) (discovers, requests int) {
	t.Helper()
	ip := l.Address.Addr().String()
	if _, err := srv.WaitFor(5*time.Second, "DHCPACK(srv0) "+ip); err != nil {
		t.Fatal(err)
	}
	return srv.Count("DHCPDISCOVER"), srv.Count("DHCPREQUEST(srv0) " + ip)
}

// stopForCounts stops dnsmasq, which returns once its whole log is read:
// counts taken after it miss no line of the run before.
func stopForCounts(t *testing.T, srv *netnstest.Dnsmasq) {
	t.Helper()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
}

// A link whose metadata has ipv4_dhcp beside a static IPv6 network (as
// Talos's publicnet and kubevirt's fixtures): the lease brings IPv4, the
// metadata's IPv6 address, route and DNS server stay, and a rerun (by
// INIT-REBOOT) leaves one of each.
func TestNetDHCPWithStaticIPv6(t *testing.T) {
	ns := netnstest.New(t)
	bin := testenv.AgentBinary(t)
	netnstest.StartDnsmasq(t, ns, netRange, "--dhcp-option=3,10.77.0.1", "--dhcp-option=6,10.77.0.53")
	mac := ns.Links(t, "dev", "eth0")[0].Address
	nd := `{"links": [{"id": "pub", "type": "phy", "ethernet_mac_address": "` + mac + `"}],
 "networks": [
  {"id": "v4", "type": "ipv4_dhcp", "link": "pub"},
  {"id": "v6", "type": "ipv6", "link": "pub", "ip_address": "2001:db8:77::10/64",
   "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8:77::1"}],
   "dns_nameservers": ["2001:db8:77::53"]}]}`
	dir := t.TempDir()
	ndFile, img := filepath.Join(dir, "network_data.json"), filepath.Join(dir, "config-2.iso")
	if err := os.WriteFile(ndFile, []byte(nd), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "mkdrive", "-o", img, "--network-data", ndFile).CombinedOutput(); err != nil {
		t.Fatalf("mkdrive: %v\n%s", err, out)
	}
	root := netRoot(t)
	for run := 1; run <= 2; run++ {
		code, out, errs := runNet(t, ns, bin, "--drive", img, "--root", root, "--timeout", "20s")
		if code != 0 {
			t.Fatalf("run %d: exit %d\nstdout: %s\nstderr: %s", run, code, out, errs)
		}
		if !strings.Contains(out, "dns 10.77.0.53 2001:db8:77::53") {
			t.Errorf("run %d: stdout %q, want the lease's and the metadata's DNS servers", run, out)
		}
		var v4s, v6s []string
		for _, l := range ns.Addrs(t, "dev", "eth0") {
			for _, a := range l.Addrs {
				switch {
				case a.Family == "inet":
					v4s = append(v4s, a.Local)
				case a.Scope == "global":
					v6s = append(v6s, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
				}
			}
		}
		if len(v4s) != 1 || strings.Join(v6s, ",") != "2001:db8:77::10/64" {
			t.Errorf("run %d: IPv4 %q, global IPv6 %q; want one lease address and 2001:db8:77::10/64", run, v4s, v6s)
		}
		if got := routeSet(t, ns); strings.Join(got, ",") != "default via 10.77.0.1" {
			t.Errorf("run %d: IPv4 routes %q, want [default via 10.77.0.1]", run, got)
		}
		var v6defaults []string
		for _, r := range ns.Routes6(t, "dev", "eth0") {
			if r.Dst == "default" {
				v6defaults = append(v6defaults, r.Gateway)
			}
		}
		if strings.Join(v6defaults, ",") != "2001:db8:77::1" {
			t.Errorf("run %d: IPv6 default routes via %q, want one via 2001:db8:77::1", run, v6defaults)
		}
	}
	conf, err := os.ReadFile(filepath.Join(root, "etc/resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "nameserver 2001:db8:77::53\nnameserver 10.77.0.53\n") {
		t.Errorf("resolv.conf lacks the metadata's then the lease's server:\n%s", conf)
	}
}

// Two links, each with its keeper: a renewal on one link rewrites
// resolv.conf with both links' servers, not with its own lease's only.
func TestNetKeepTwoLinksResolvConf(t *testing.T) {
	// T1 2 s, T2 4 s (RFC 2132 options 58, 59).
	ns := twoLinks(t, "--dhcp-option=58,2", "--dhcp-option=59,4")
	bin := testenv.AgentBinary(t)
	root := netRoot(t)
	args := []string{"--iface", "eth0", "--iface", "eth1", "--net", "dhcp", "--root", root}
	if code, out, errs := runNet(t, ns, bin, append(args, "--timeout", "20s")...); code != 0 {
		t.Fatalf("net: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	a := startAgent(t, ns, bin, append([]string{"net", "--keep"}, args...)...)
	for _, link := range []string{"eth0", "eth1"} {
		a.waitFor(t, 10*time.Second, "dhcp "+link+": RENEWING")
		a.waitFor(t, 10*time.Second, "dhcp "+link+": bound to")
	}
	conf, err := os.ReadFile(filepath.Join(root, "etc/resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "nameserver 10.77.0.53\nnameserver 10.88.0.53\n") {
		t.Errorf("resolv.conf after the keepers' renewals does not list both links' servers:\n%s", conf)
	}
	if err := a.stop(t); err != nil {
		t.Errorf("keeper exit: %v", err)
	}
}
