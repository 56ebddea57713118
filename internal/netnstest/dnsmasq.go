package netnstest

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// Dnsmasq is a real dnsmasq serving DHCP on the server end of a pair. Its
// log is its Proc's output.
type Dnsmasq struct {
	*Proc
	LeaseFile string // pass it to a second StartDnsmasq to keep the leases
}

// StartDnsmasq runs dnsmasq in ns.Peer (the server namespace) bound to its
// veth end, in the foreground, logging to a buffer, with DNS disabled
// (--port=0), no ping before offering (--no-ping) and the lease file in a
// temporary directory. args are added as they are, typically
// "--dhcp-range=10.77.0.10,10.77.0.50,1h" and "--dhcp-option=...". A
// --dhcp-leasefile in args replaces the default one (to restart a server
// with its leases). It returns once dnsmasq says it has started; t.Cleanup
// stops it.
func StartDnsmasq(t testing.TB, ns *NS, args ...string) *Dnsmasq {
	t.Helper()
	bin := testenv.RequireCommands(t, "dnsmasq")["dnsmasq"]
	srv := ns.Peer
	d := &Dnsmasq{}
	dir := t.TempDir()
	d.LeaseFile = filepath.Join(dir, "leases")
	base := []string{
		"--no-daemon", "--no-ping", "--log-dhcp", "--log-facility=-",
		"--conf-file=/dev/null", "--port=0",
		"--interface=" + srv.Link, "--bind-interfaces",
		"--pid-file=" + filepath.Join(dir, "pid"),
		// As root, so that it can rewrite the lease file in a 0700
		// temporary directory after dropping privileges would not.
		"--user=root",
	}
	leaseGiven := false
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--dhcp-leasefile="); ok {
			leaseGiven, d.LeaseFile = true, v
		}
	}
	if !leaseGiven {
		base = append(base, "--dhcp-leasefile="+d.LeaseFile)
	}
	p, err := StartProc("dnsmasq in netns "+srv.Name, srv.Exec(bin, append(base, args...)...))
	if err != nil {
		t.Fatal(err)
	}
	d.Proc = p
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Logf("dnsmasq: %v", err)
		}
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", strings.Join(d.Lines(), "\n"))
		}
	})
	if _, err := d.WaitFor(5*time.Second, "started, version"); err != nil {
		t.Fatalf("dnsmasq in netns %s: %v\n%s", srv.Name, err, strings.Join(d.Lines(), "\n"))
	}
	return d
}

// Stop ends dnsmasq with SIGTERM and waits for it to exit (up to 5s, then
// SIGKILL). Stopping twice is harmless. `ip netns exec` execs dnsmasq in its
// own process, so the pid signalled is dnsmasq's.
func (d *Dnsmasq) Stop() error { return d.Proc.Stop(syscall.SIGTERM, 5*time.Second) }
