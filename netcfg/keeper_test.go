package netcfg

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// fakeClock is virtual time: After advances it at once, so the keeper's
// whole schedule runs in no real time and in a fixed order.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	if d > 0 {
		c.now = c.now.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// keeperWorld records, as offsets from testAcquired, what the keeper asked
// of the network and the system.
type keeperWorld struct {
	root   string
	clock  *fakeClock
	cancel context.CancelFunc
	calls  []string
	// request answers a REQUEST; discover a DISCOVER. Either may call
	// w.stop() to end the run.
	request  func(kind RequestKind, l *Lease) (*dhcpv4.DHCPv4, error)
	discover func() (*dhcpv4.DHCPv4, error)
}

func (w *keeperWorld) record(format string, args ...any) {
	w.calls = append(w.calls, fmt.Sprintf("%s@%s", fmt.Sprintf(format, args...), w.clock.now.Sub(testAcquired)))
}

func (w *keeperWorld) Discover(ctx context.Context) (*dhcpv4.DHCPv4, time.Time, error) {
	w.record("DISCOVER")
	ack, err := w.discover()
	return ack, w.clock.now, err
}

func (w *keeperWorld) Request(ctx context.Context, kind RequestKind, l *Lease) (*dhcpv4.DHCPv4, error) {
	w.record("%s %s", kind, l.Address.Addr())
	return w.request(kind, l)
}

func (w *keeperWorld) Release(ctx context.Context, l *Lease) error {
	w.record("RELEASE %s", l.Address.Addr())
	return nil
}

func (w *keeperWorld) Apply(ctx context.Context, p Plan) error {
	a := p.Links[0].Addrs[0]
	w.record("apply %s valid %s", a.Prefix, a.Valid)
	return nil
}

func (w *keeperWorld) Remove(ctx context.Context, p Plan) error {
	w.record("remove %s", p.Links[0].Addrs[0].Prefix)
	return nil
}

func (w *keeperWorld) stop() { w.cancel() }

var errNoAnswer = fmt.Errorf("test: %w", ErrNoAnswer)

// runKeeper runs a keeper from virtual time start (after testAcquired)
// with a saved lease when saved is true.
func runKeeper(t *testing.T, w *keeperWorld, start time.Duration, saved bool, links <-chan bool, release bool) []string {
	t.Helper()
	root := t.TempDir()
	if saved {
		if err := SaveLease(root, testLease(t)); err != nil {
			t.Fatal(err)
		}
	}
	w.root = root
	w.clock = &fakeClock{now: testAcquired.Add(start)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.cancel = cancel
	k := &Keeper{Iface: "eth0", Root: root, Clock: w.clock, DHCP: w, Net: w, Links: links, Release: release,
		Logf: func(f string, a ...any) { t.Logf(f, a...) }}
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not end; calls so far: %q", w.calls)
	}
	return w.calls
}

func ackFor(t *testing.T, ip net.IP) *dhcpv4.DHCPv4 {
	return testACK(t, mask(255, 255, 255, 0), dhcpv4.WithYourIP(ip), dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1))))
}

func TestKeeperServerGone(t *testing.T) {
	// A one-hour lease (T1 30m, T2 52m30s), taken over after 10 minutes,
	// and a server that never answers: RFC 2131 §4.4.5 retransmissions at
	// half the time left, at least 60 s, then expiry and a new DISCOVER.
	w := &keeperWorld{}
	w.request = func(RequestKind, *Lease) (*dhcpv4.DHCPv4, error) { return nil, errNoAnswer }
	w.discover = func() (*dhcpv4.DHCPv4, error) { w.stop(); return nil, context.Canceled }
	got := runKeeper(t, w, 10*time.Minute, true, nil, false)
	want := []string{
		"apply 192.0.2.10/24 valid 50m1s@10m0s",
		"RENEWING 192.0.2.10@30m0s",
		"RENEWING 192.0.2.10@41m15s",
		"RENEWING 192.0.2.10@46m52.5s",
		"RENEWING 192.0.2.10@49m41.25s",
		"RENEWING 192.0.2.10@51m5.625s",
		"RENEWING 192.0.2.10@52m5.625s",
		"REBINDING 192.0.2.10@52m30s",
		"REBINDING 192.0.2.10@56m15s",
		"REBINDING 192.0.2.10@58m7.5s",
		"REBINDING 192.0.2.10@59m7.5s",
		"remove 192.0.2.10/24@1h0m0s",
		"DISCOVER@1h0m0s",
	}
	checkActions(t, want, got)
}

func TestKeeperRenews(t *testing.T) {
	w := &keeperWorld{}
	n := 0
	w.request = func(kind RequestKind, l *Lease) (*dhcpv4.DHCPv4, error) {
		if n++; n == 2 {
			w.stop()
			return nil, context.Canceled
		}
		return ackFor(t, net.IPv4(192, 0, 2, 10)), nil
	}
	got := runKeeper(t, w, 0, true, nil, false)
	want := []string{
		"apply 192.0.2.10/24 valid 1h0m1s@0s",
		"RENEWING 192.0.2.10@30m0s",
		// The renewed lease counts from the REQUEST (RFC 2131 §4.4.5).
		"apply 192.0.2.10/24 valid 1h0m0s@30m0s",
		"RENEWING 192.0.2.10@1h0m0s",
	}
	checkActions(t, want, got)
}

func TestKeeperNAK(t *testing.T) {
	w := &keeperWorld{}
	w.request = func(kind RequestKind, l *Lease) (*dhcpv4.DHCPv4, error) {
		if l.Address.Addr().String() == "192.0.2.20" {
			w.stop()
			return nil, context.Canceled
		}
		return nil, fmt.Errorf("test: %w", ErrNAK)
	}
	w.discover = func() (*dhcpv4.DHCPv4, error) { return ackFor(t, net.IPv4(192, 0, 2, 20)), nil }
	got := runKeeper(t, w, 0, true, nil, false)
	want := []string{
		"apply 192.0.2.10/24 valid 1h0m1s@0s",
		"RENEWING 192.0.2.10@30m0s",
		"remove 192.0.2.10/24@30m0s",
		"DISCOVER@30m0s",
		"apply 192.0.2.20/24 valid 1h0m0s@30m0s",
		"RENEWING 192.0.2.20@1h0m0s",
	}
	checkActions(t, want, got)
}

func TestKeeperNoSavedLease(t *testing.T) {
	w := &keeperWorld{}
	w.discover = func() (*dhcpv4.DHCPv4, error) { return ackFor(t, net.IPv4(192, 0, 2, 10)), nil }
	w.request = func(RequestKind, *Lease) (*dhcpv4.DHCPv4, error) { w.stop(); return nil, context.Canceled }
	got := runKeeper(t, w, 0, false, nil, false)
	want := []string{
		"DISCOVER@0s",
		"apply 192.0.2.10/24 valid 1h0m0s@0s",
		"RENEWING 192.0.2.10@30m0s",
	}
	checkActions(t, want, got)
}

func TestKeeperLinkDownUp(t *testing.T) {
	links := make(chan bool, 2)
	links <- false
	links <- true
	w := &keeperWorld{}
	w.request = func(kind RequestKind, l *Lease) (*dhcpv4.DHCPv4, error) {
		if kind != InitReboot {
			w.stop()
			return nil, context.Canceled
		}
		return ackFor(t, net.IPv4(192, 0, 2, 10)), nil
	}
	got := runKeeper(t, w, 5*time.Minute, true, links, false)
	want := []string{
		"apply 192.0.2.10/24 valid 55m1s@5m0s",
		"INIT-REBOOT 192.0.2.10@5m0s",
		"apply 192.0.2.10/24 valid 1h0m0s@5m0s",
		"RENEWING 192.0.2.10@35m0s",
	}
	checkActions(t, want, got)
}

func TestKeeperReleaseOnStop(t *testing.T) {
	w := &keeperWorld{}
	w.request = func(RequestKind, *Lease) (*dhcpv4.DHCPv4, error) { w.stop(); return nil, context.Canceled }
	got := runKeeper(t, w, 0, true, nil, true)
	want := []string{
		"apply 192.0.2.10/24 valid 1h0m1s@0s",
		"RENEWING 192.0.2.10@30m0s",
		"RELEASE 192.0.2.10@30m0s",
		"remove 192.0.2.10/24@30m0s",
	}
	checkActions(t, want, got)
	if _, err := LoadLease(w.root, "eth0"); err == nil {
		t.Errorf("lease file still there after release")
	}
}

func checkActions(t *testing.T, want, got []string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("keeper actions (-want +got):\n%s", diff)
	}
}
