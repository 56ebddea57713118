package netnstest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPair checks the namespaces, the veth pair, the private resolv.conf
// and that cleanup removes them all.
func TestPair(t *testing.T) {
	var name, server string
	t.Run("inner", func(t *testing.T) {
		ns := New(t)
		name, server = ns.Name, ns.Peer.Name

		links := ns.Links(t, "dev", ClientLink)
		if len(links) != 1 || !slices.Contains(links[0].Flags, "UP") {
			t.Errorf("client link %s = %+v, want one link, UP", ClientLink, links)
		}
		addrs := ns.Peer.Addrs(t, "dev", ServerLink)
		if len(addrs) != 1 || len(addrs[0].Addrs) == 0 || addrs[0].Addrs[0].Local != ServerAddr.Addr().String() {
			t.Errorf("server addresses = %+v, want %s", addrs, ServerAddr)
		}
		lo := ns.Links(t, "dev", "lo")
		if len(lo) != 1 || !slices.Contains(lo[0].Flags, "UP") {
			t.Errorf("lo = %+v, want UP", lo)
		}
		// Neither end is in the host's namespace.
		if _, err := os.Stat(filepath.Join("/sys/class/net", ServerLink)); err == nil {
			t.Errorf("%s exists in the host namespace", ServerLink)
		}
		got := ns.Run(t, "cat", "/etc/resolv.conf")
		if !strings.Contains(got, ns.Name) {
			t.Errorf("resolv.conf inside %s = %q, want the private one", ns.Name, got)
		}
		h := ns.Handle(t)
		if _, err := h.LinkByName(ClientLink); err != nil {
			t.Errorf("netlink handle in %s: LinkByName(%s): %v", ns.Name, ClientLink, err)
		}
		ns.AddVeth(t, "eth1", "02:00:00:00:00:11", "srv1")
		if l := ns.Links(t, "dev", "eth1"); len(l) != 1 || l[0].Address != "02:00:00:00:00:11" {
			t.Errorf("eth1 = %+v, want MAC 02:00:00:00:00:11", l)
		}
	})
	if name == "" {
		return // skipped
	}
	for _, n := range []string{name, server} {
		if _, err := os.Stat(filepath.Join("/run/netns", n)); err == nil {
			t.Errorf("namespace %s still exists after cleanup", n)
		}
		if _, err := os.Stat(filepath.Join("/etc/netns", n)); err == nil {
			t.Errorf("/etc/netns/%s still exists after cleanup", n)
		}
	}
}

// TestDnsmasq checks that dnsmasq starts bound to the server end, that its
// log is captured line by line, and that it stops on request. Full DHCP
// exchanges are the DHCP client's tests.
func TestDnsmasq(t *testing.T) {
	ns := New(t)
	d := StartDnsmasq(t, ns, "--dhcp-range=10.77.0.10,10.77.0.50,1h")
	if _, err := d.WaitFor(5*time.Second, "DHCP, IP range 10.77.0.10"); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(d.Lines(), "\n"))
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
	default:
		t.Fatal("Stop returned before dnsmasq exited")
	}
	if _, err := d.WaitFor(time.Second, "no such line"); err == nil {
		t.Error("WaitFor found a line that was never logged")
	}
}
