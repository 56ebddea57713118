package netcfg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Clock is the keeper's view of time: a fake one drives the T1/T2 state
// machine in tests.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time                         { return time.Now() }
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RequestKind is the client state a REQUEST is sent in (RFC 2131 §4.3.2).
type RequestKind int

const (
	// Renewing: unicast to the lease's server from the leased address,
	// ciaddr set, no server identifier, no requested address.
	Renewing RequestKind = iota
	// Rebinding: the same message, broadcast, for any server.
	Rebinding
	// InitReboot: broadcast from 0.0.0.0 with the old address in option
	// 50, after the link came back (RFC 2131 §3.2).
	InitReboot
)

func (k RequestKind) String() string {
	switch k {
	case Renewing:
		return "RENEWING"
	case Rebinding:
		return "REBINDING"
	case InitReboot:
		return "INIT-REBOOT"
	}
	return fmt.Sprintf("RequestKind(%d)", int(k))
}

// Exchanger is the DHCP traffic of a keeper; DHCPExchanger is the real one.
type Exchanger interface {
	// Discover runs DISCOVER..ACK until it gets an ACK or ctx ends, and
	// returns the ACK and when its REQUEST was sent.
	Discover(ctx context.Context) (*dhcpv4.DHCPv4, time.Time, error)
	// Request sends a REQUEST for l in the given state and waits until ctx
	// ends for the ACK; a NAK is an error wrapping ErrNAK.
	Request(ctx context.Context, kind RequestKind, l *Lease) (*dhcpv4.DHCPv4, error)
	// Release sends DHCPRELEASE for l (RFC 2131 §4.4.6); no answer comes.
	Release(ctx context.Context, l *Lease) error
}

// Configurer applies a link's plan to the system and takes it away.
type Configurer interface {
	Apply(ctx context.Context, p Plan) error
	Remove(ctx context.Context, p Plan) error
}

// Keeper keeps one link's DHCP lease: the stage-2 `net --keep` service.
type Keeper struct {
	Iface string
	Root  string // lease files live under Root/run/notos-agent
	Clock Clock
	DHCP  Exchanger
	Net   Configurer
	// Links carries the link's carrier state: false when it goes down,
	// true when it comes back. Nil when not watched.
	Links <-chan bool
	// Release sends DHCPRELEASE and removes the address when Run's
	// context ends (SIGTERM); otherwise the address and lease stay for
	// the next keeper to take over.
	Release bool
	// MinRetry is RFC 2131 §4.4.5's floor between retransmissions while
	// renewing or rebinding; zero means 60 s.
	MinRetry time.Duration
	Logf     func(format string, args ...any)
}

func (k *Keeper) logf(format string, args ...any) {
	if k.Logf != nil {
		k.Logf("dhcp %s: "+format, append([]any{k.Iface}, args...)...)
	}
}

// Run keeps the lease until ctx ends. It takes over the saved lease when
// there is one that has not expired (no DISCOVER), renews it at T1 by
// unicast and rebinds at T2 by broadcast (RFC 2131 §4.4.5), and on expiry
// or NAK removes the address and routes and starts over. Run returns nil
// when ctx ends; it never gives up before.
func (k *Keeper) Run(ctx context.Context) error {
	if k.MinRetry == 0 {
		k.MinRetry = 60 * time.Second
	}
	lease := k.takeOver(ctx)
	for ctx.Err() == nil {
		if lease == nil {
			lease = k.acquire(ctx)
			continue
		}
		now := k.Clock.Now()
		t1 := lease.Acquired.Add(lease.T1)
		t2 := lease.Acquired.Add(lease.T2)
		end := lease.Acquired.Add(lease.Duration)
		if lease.Duration == infiniteLease {
			// RFC 2131 §3.3: an infinite lease is never renewed.
			if !k.wait(ctx, now.Add(24*time.Hour), &lease) {
				break
			}
			continue
		}
		if !now.Before(end) {
			k.logf("lease of %s expired at %s: removing it and starting over", lease.Address, end.Format(time.RFC3339))
			k.drop(ctx, lease)
			lease = nil
			continue
		}
		if now.Before(t1) {
			k.wait(ctx, t1, &lease)
			continue
		}
		kind, limit := Renewing, t2
		if !now.Before(t2) {
			kind, limit = Rebinding, end
		}
		// RFC 2131 §4.4.5: wait half the time left until T2 (or the end
		// of the lease), but at least a minute, before sending again.
		next := now.Add(max(k.MinRetry, limit.Sub(now)/2))
		if next.After(limit) {
			next = limit
		}
		k.logf("%s: asking %s to extend %s", kind, serverOrAll(kind, lease), lease.Address)
		rctx, cancel := context.WithTimeout(ctx, next.Sub(now))
		ack, err := k.DHCP.Request(rctx, kind, lease)
		cancel()
		switch {
		case err == nil:
			if l := k.bind(ctx, ack, now, lease); l != nil {
				lease = l
				continue
			}
		case errors.Is(err, ErrNAK):
			k.logf("%s: %v: removing %s and starting over", kind, err, lease.Address)
			k.drop(ctx, lease)
			lease = nil
			continue
		case ctx.Err() == nil:
			k.logf("%s: %v", kind, err)
		}
		k.wait(ctx, next, &lease)
	}
	k.shutdown(lease)
	return nil
}

func serverOrAll(kind RequestKind, l *Lease) string {
	if kind == Renewing {
		return l.Server.String()
	}
	return "any server"
}

// takeOver adopts the saved lease: its plan is applied again (idempotent)
// with the lifetimes that remain, and no DISCOVER is sent.
func (k *Keeper) takeOver(ctx context.Context) *Lease {
	l, err := LoadLease(k.Root, k.Iface)
	if errors.Is(err, fs.ErrNotExist) {
		k.logf("no saved lease: starting with DISCOVER")
		return nil
	}
	if err != nil {
		k.logf("%v: starting with DISCOVER", err)
		return nil
	}
	p, err := l.PlanAt(k.Clock.Now())
	if err != nil {
		k.logf("saved lease not usable: %v: starting with DISCOVER", err)
		return nil
	}
	if err := k.Net.Apply(ctx, p); err != nil {
		k.logf("apply saved lease of %s: %v", l.Address, err)
	}
	k.logf("took over lease of %s from %s until %s", l.Address, l.Server, l.Acquired.Add(l.Duration).Format(time.RFC3339))
	return l
}

// acquire gets a new lease by DISCOVER, retrying a minute later on errors
// other than ctx ending.
func (k *Keeper) acquire(ctx context.Context) *Lease {
	ack, sent, err := k.DHCP.Discover(ctx)
	if err == nil {
		if l := k.bind(ctx, ack, sent, nil); l != nil {
			return l
		}
	} else if ctx.Err() == nil {
		k.logf("%v", err)
	}
	if ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-k.Clock.After(k.MinRetry):
		}
	}
	return nil
}

// bind applies and saves the lease an ACK grants; old is the lease it
// replaces, if any. It returns nil when the ACK is unusable.
func (k *Keeper) bind(ctx context.Context, ack *dhcpv4.DHCPv4, sent time.Time, old *Lease) *Lease {
	p, err := ACKToPlan(k.Iface, ack, sent)
	if err != nil {
		k.logf("%v", err)
		return nil
	}
	for _, w := range p.Warnings {
		k.logf("%s", w)
	}
	l := p.Links[0].Lease
	if old != nil && old.Address != l.Address {
		k.logf("address changed from %s to %s", old.Address, l.Address)
		k.drop(ctx, old)
	}
	if err := k.Net.Apply(ctx, p); err != nil {
		k.logf("apply lease of %s: %v", l.Address, err)
	}
	if err := SaveLease(k.Root, l); err != nil {
		k.logf("save lease: %v", err)
	}
	k.logf("bound to %s from %s for %s (T1 %s, T2 %s)", l.Address, l.Server, l.Duration, l.T1, l.T2)
	return l
}

// drop removes the lease's address and routes and its saved file.
func (k *Keeper) drop(ctx context.Context, l *Lease) {
	if p, err := l.Plan(); err == nil {
		if err := k.Net.Remove(ctx, p); err != nil {
			k.logf("remove %s: %v", l.Address, err)
		}
	} else {
		k.logf("remove %s: %v", l.Address, err)
	}
	if err := RemoveLease(k.Root, k.Iface); err != nil {
		k.logf("%v", err)
	}
}

// wait waits until the clock reaches until, ctx ends, or the link goes
// down. A link that goes down is waited for; when it comes back, the lease
// is confirmed by INIT-REBOOT (RFC 2131 §3.2), which may replace or drop
// *lease. It reports false when ctx ended.
func (k *Keeper) wait(ctx context.Context, until time.Time, lease **Lease) bool {
	// Events already there first, so that a fake clock, always ready,
	// cannot hide them.
	if ctx.Err() != nil {
		return false
	}
	select {
	case up := <-k.Links:
		return k.linkEvent(ctx, up, lease)
	default:
	}
	select {
	case <-ctx.Done():
		return false
	case up := <-k.Links:
		return k.linkEvent(ctx, up, lease)
	case <-k.Clock.After(until.Sub(k.Clock.Now())):
		return true
	}
}

func (k *Keeper) linkEvent(ctx context.Context, up bool, lease **Lease) bool {
	if up {
		return true
	}
	k.logf("link down: waiting for it to come back")
	l := *lease
	for !up {
		select {
		case up = <-k.Links:
			continue
		default:
		}
		var expiry <-chan time.Time
		if l != nil && l.Duration != infiniteLease {
			expiry = k.Clock.After(l.Acquired.Add(l.Duration).Sub(k.Clock.Now()))
		}
		select {
		case <-ctx.Done():
			return false
		case up = <-k.Links:
		case <-expiry:
			// The lease ran out while the link was down: the main
			// loop removes it and starts over once the link is up.
			expiry = nil
			l = nil
		}
	}
	if l == nil {
		k.logf("link up")
		return true
	}
	k.logf("link up: %s: confirming %s", InitReboot, l.Address)
	sent := k.Clock.Now()
	ack, err := k.DHCP.Request(ctx, InitReboot, l)
	switch {
	case err == nil:
		if nl := k.bind(ctx, ack, sent, l); nl != nil {
			*lease = nl
		}
	case errors.Is(err, ErrNAK):
		k.logf("%s: %v: removing %s and starting over", InitReboot, err, l.Address)
		k.drop(ctx, l)
		*lease = nil
	default:
		// RFC 2131 §3.2: without an answer the client may keep using
		// the address for the rest of the lease.
		k.logf("%s: %v: keeping %s until the lease ends", InitReboot, err, l.Address)
	}
	return ctx.Err() == nil
}

// shutdown runs when Run's context ends: with Release, the lease is given
// back and the address removed; otherwise both stay.
func (k *Keeper) shutdown(l *Lease) {
	if !k.Release || l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := k.DHCP.Release(ctx, l); err != nil {
		k.logf("release %s: %v", l.Address, err)
	} else {
		k.logf("released %s to %s", l.Address, l.Server)
	}
	k.drop(ctx, l)
}
