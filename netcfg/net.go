package netcfg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/notos-agent/notos-agent/configdrive"
)

// UpOptions is what the `net` command asks of Up.
type UpOptions struct {
	Ifaces     []string              // --iface; empty: the metadata's links, else every physical Ethernet link
	Root       string                // holds etc/resolv.conf and run/notos-agent; "" is "/"
	SysDir     string                // "" is /sys
	Mode       Mode                  // "" is ModeAuto
	Metadata   *configdrive.Metadata // nil: no config drive
	ResolvConf ResolvConfMode
	DHCP       DHCPOptions
	// KeepDHCP leaves the DHCP links to keepers (`net --keep`): Up
	// configures only the static ones and returns the others unconfigured
	// in UpResult.DHCPLinks.
	KeepDHCP bool
	Logf     func(format string, args ...any)
}

// LinkOutcome is what Up did on one chosen link.
type LinkOutcome struct {
	Link   string     // the kernel's name, or the MAC when not found
	Result LinkResult // what Apply put in place
	DNS    DNS        // what the link's lease or metadata offered
	Lease  *Lease     // the DHCP lease, if any
	// Renewed: the saved lease was confirmed by INIT-REBOOT; false with a
	// Lease: a new lease by DISCOVER.
	Renewed bool
	// Replaced is the saved lease's address when the new lease's differs:
	// its address and routes were removed before the new ones went in.
	Replaced netip.Prefix
	Took     time.Duration
	Err      error
}

// String is the link's one log line: what was applied and how long it
// took, or why it failed.
func (o LinkOutcome) String() string {
	took := o.Took.Round(10 * time.Microsecond)
	if took > time.Second {
		took = took.Round(time.Millisecond)
	}
	if o.Err != nil {
		return fmt.Sprintf("%s: not configured after %s: %v", o.Link, took, o.Err)
	}
	s := o.Result.String()
	if len(o.DNS.Servers) > 0 {
		var servers []string
		for _, a := range o.DNS.Servers {
			servers = append(servers, a.String())
		}
		s += ", dns " + strings.Join(servers, " ")
	}
	if l := o.Lease; l != nil {
		how := "new"
		if o.Renewed {
			how = "renewed"
		}
		s += fmt.Sprintf(" (%s lease %s from %s", how, l.Duration, l.Server)
		if o.Replaced.IsValid() {
			s += ", replacing " + o.Replaced.String()
		}
		s += ")"
	}
	return fmt.Sprintf("%s in %s", s, took)
}

// UpResult is what Up did.
type UpResult struct {
	Links      []LinkOutcome
	DHCPLinks  []string // with KeepDHCP: the links left to keepers
	ResolvConf ResolvConfOutcome
	Warnings   []string
}

// Up configures the network once: it chooses the links, waits for them,
// builds the plan (static from the metadata, DHCP elsewhere, as Mode
// says), gets a lease on every DHCP link at the same time, applies each
// link as soon as its plan is known, writes resolv.conf with every link's
// DNS, and saves the leases. All within ctx. The error names every chosen
// link left unconfigured.
func Up(ctx context.Context, h *netlink.Handle, o UpOptions) (UpResult, error) {
	start := time.Now()
	var res UpResult
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if o.DHCP.Logf == nil {
		o.DHCP.Logf = o.Logf
	}
	if o.Mode == ModeOff {
		return res, nil
	}
	md, err := PlanFromMetadata(o.Metadata, o.Mode)
	if err != nil {
		return res, err
	}
	res.Warnings = append(res.Warnings, md.Warnings...)
	refs, err := ChooseLinks(o.Ifaces, md, o.SysDir)
	if err != nil {
		return res, err
	}
	// Static addresses need no carrier; a DHCP exchange does.
	found, waitErr := WaitLinks(ctx, h, refs, WaitOptions{NoCarrierOK: o.Mode == ModeStatic})
	plan := ForLinks(md, found, o.Mode)
	res.Warnings = append(res.Warnings, plan.Warnings[len(md.Warnings):]...)
	var errs []error
	if waitErr != nil {
		errs = append(errs, waitErr)
		for _, r := range refs {
			if !slices.ContainsFunc(found, func(f LinkRef) bool {
				return f == r || (r.Name != "" && f.Name == r.Name) || (r.MAC != "" && strings.EqualFold(f.MAC, r.MAC))
			}) {
				res.Links = append(res.Links, LinkOutcome{Link: r.String(), Took: time.Since(start), Err: fmt.Errorf("%w", ErrLinkMissing)})
			}
		}
	}

	apply := ApplyOptions{Root: o.Root, ResolvConf: ResolvConfSkip}
	var mu sync.Mutex // guards res, errs and h
	// configure applies lp; out carries what is already known of the
	// outcome (the lease, how it was had).
	configure := func(lp LinkPlan, out LinkOutcome, warnings []string) {
		p := Plan{Links: []LinkPlan{lp}}
		mu.Lock()
		defer mu.Unlock()
		res.Warnings = append(res.Warnings, warnings...)
		r, err := Apply(ctx, h, p, apply)
		out.Link, out.DNS, out.Took = lp.Name, lp.DNS, time.Since(start)
		if len(r.Links) > 0 {
			out.Result = r.Links[0]
		}
		res.Warnings = append(res.Warnings, r.Warnings...)
		if err == nil && out.Lease != nil {
			err = SaveLease(o.Root, out.Lease)
		}
		out.Err = errors.Join(out.Err, err)
		if out.Err != nil {
			errs = append(errs, fmt.Errorf("link %s: %w", lp.Name, out.Err))
		}
		res.Links = append(res.Links, out)
	}

	var wg sync.WaitGroup
	for _, lp := range plan.Links {
		switch {
		case lp.Method != MethodDHCP:
			configure(lp, LinkOutcome{}, nil)
		case o.KeepDHCP:
			res.DHCPLinks = append(res.DHCPLinks, lp.Name)
		default:
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A panic here must not take the boot down with it.
				defer func() {
					if r := recover(); r != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("dhcp on %s: panic: %v\n%s", lp.Name, r, debug.Stack()))
						mu.Unlock()
					}
				}()
				saved, reboot := savedLease(o.Root, lp.Name, o.DHCP.Logf)
				lease, renewed, err := RebootOrAcquire(ctx, lp.Name, reboot, o.DHCP)
				if err != nil {
					mu.Lock()
					res.Links = append(res.Links, LinkOutcome{Link: lp.Name, Took: time.Since(start), Err: err})
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				out := LinkOutcome{Lease: lease.Links[0].Lease, Renewed: renewed}
				mu.Lock()
				if saved != nil && saved.Address != out.Lease.Address {
					// Never a second address or route: the old lease's go
					// before the new one's come.
					out.Replaced = saved.Address
					out.Err = removeLease(ctx, h, saved)
				}
				dl := withMetric(h, withLease(lp, lease.Links[0]))
				mu.Unlock()
				configure(dl, out, lease.Warnings)
			}()
		}
	}
	wg.Wait()
	// One line per link in plan order, whatever order they finished in.
	order := func(name string) int {
		if i := slices.IndexFunc(plan.Links, func(lp LinkPlan) bool { return lp.Name == name }); i >= 0 {
			return i
		}
		return len(plan.Links)
	}
	// sort.SliceStable, not slices.SortStableFunc: no sort code generated
	// for LinkOutcome alone (12 KB of the binary).
	sort.SliceStable(res.Links, func(i, j int) bool { return order(res.Links[i].Link) < order(res.Links[j].Link) })

	// resolv.conf once, with what every link offered: the metadata's
	// servers first, then each lease's, in link order.
	dns := plan.DNS
	for _, l := range res.Links {
		dns = mergeDNS(dns, l.DNS)
	}
	name := ""
	if len(res.Links) > 0 {
		name = res.Links[0].Link
	}
	out, warns, err := UpdateResolvConf(ctx, dns, ResolvConfOptions{Root: o.Root, Mode: o.ResolvConf, Name: name})
	res.ResolvConf = out
	res.Warnings = append(res.Warnings, warns...)
	if err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// savedLease is iface's lease saved under root by an earlier run, if any,
// and the same lease when it has not expired (worth an INIT-REBOOT).
func savedLease(root, iface string, logf func(string, ...any)) (saved, valid *Lease) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	l, err := LoadLease(root, iface)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		logf("dhcp %s: saved lease: %v: starting with DISCOVER", iface, err)
		return nil, nil
	}
	if _, err := l.PlanAt(time.Now()); err != nil {
		logf("dhcp %s: saved lease not usable: %v: starting with DISCOVER", iface, err)
		return l, nil
	}
	return l, l
}

// removeLease takes l's addresses and routes away (with the metric they
// were applied with), as its address is not the one the link keeps.
func removeLease(ctx context.Context, h *netlink.Handle, l *Lease) error {
	p, err := l.Plan()
	if err != nil {
		return fmt.Errorf("remove old lease of %s: %w", l.Address, err)
	}
	if err := Remove(ctx, h, withMetric(h, p.Links[0])); err != nil {
		return fmt.Errorf("remove old lease of %s: %w", l.Address, err)
	}
	return nil
}

// withLease is the metadata's plan for a DHCP link with the lease's IPv4
// side: the lease's address, routes, DNS and MTU, and the metadata's IPv6
// addresses and routes, IPv6 handling, DNS servers (after the lease's,
// without repeats), and MTU when the lease sets none.
func withLease(meta, lease LinkPlan) LinkPlan {
	out := lease
	out.IPv6 = meta.IPv6
	out.DNS = mergeDNS(lease.DNS, meta.DNS)
	if out.MTU == 0 {
		out.MTU = meta.MTU
	}
	for _, a := range meta.Addrs {
		if a.Prefix.Addr().Is6() {
			out.Addrs = append(out.Addrs, a)
		}
	}
	for _, r := range meta.Routes {
		if r.Dst.Addr().Is6() {
			out.Routes = append(out.Routes, r)
		}
	}
	return out
}

// mergeDNS appends b's servers and search domains to a's, without
// repeats; a's domain wins.
func mergeDNS(a, b DNS) DNS {
	out := DNS{Servers: slices.Clone(a.Servers), Search: slices.Clone(a.Search), Domain: a.Domain}
	for _, s := range b.Servers {
		if !slices.Contains(out.Servers, s) {
			out.Servers = append(out.Servers, s)
		}
	}
	for _, s := range b.Search {
		if !slices.Contains(out.Search, s) {
			out.Search = append(out.Search, s)
		}
	}
	if out.Domain == "" {
		out.Domain = b.Domain
	}
	return out
}

// Keep runs a lease keeper on each link until ctx ends (SIGTERM), each in
// its own goroutine with its own netlink handle, and watches each link's
// carrier for the keeper's INIT-REBOOT.
func Keep(ctx context.Context, links []string, o UpOptions, release bool) error {
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	// The metadata's servers stay in resolv.conf beside the leases'.
	md, err := PlanFromMetadata(o.Metadata, o.Mode)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(links))
	for i, name := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					errs[i] = fmt.Errorf("keeper on %s: panic: %v\n%s", name, r, debug.Stack())
				}
			}()
			errs[i] = keepLink(ctx, name, o, md.DNS, release)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func keepLink(ctx context.Context, name string, o UpOptions, static DNS, release bool) error {
	// NETLINK_ROUTE only: without a family NewHandle also opens XFRM, whose
	// module (xfrm_user) is not loaded at boot.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("keeper on %s: open netlink: %w", name, err)
	}
	defer h.Close()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	links, err := watchCarrier(wctx, name)
	if err != nil {
		return fmt.Errorf("keeper on %s: %w", name, err)
	}
	k := &Keeper{
		Iface:   name,
		Root:    o.Root,
		Clock:   SystemClock{},
		DHCP:    &DHCPExchanger{Iface: name, Options: o.DHCP},
		Net:     netlinkConfigurer{h: h, o: ApplyOptions{Root: o.Root, ResolvConf: o.ResolvConf}, static: static},
		Links:   links,
		Release: release,
		Logf:    o.Logf,
	}
	return k.Run(ctx)
}

// netlinkConfigurer is the keeper's Configurer on the real system.
type netlinkConfigurer struct {
	h      *netlink.Handle
	o      ApplyOptions
	static DNS // the metadata's servers
}

// Apply applies a lease's plan; resolv.conf gets every link's servers
// (keeperDNS), not this lease's alone, as each link has its own keeper.
func (c netlinkConfigurer) Apply(ctx context.Context, p Plan) error {
	for i := range p.Links {
		p.Links[i] = withMetric(c.h, p.Links[i])
	}
	if len(p.Links) == 1 {
		p.DNS = keeperDNS(c.o.Root, p.Links[0].Name, c.static, p.DNS, time.Now())
	}
	_, err := Apply(ctx, c.h, p, c.o)
	return err
}

func (c netlinkConfigurer) Remove(ctx context.Context, p Plan) error {
	var errs []error
	for _, lp := range p.Links {
		errs = append(errs, Remove(ctx, c.h, withMetric(c.h, lp)))
	}
	return errors.Join(errs...)
}

// keeperDNS is the resolv.conf of a keeper on iface applying a lease that
// offers own: static (the metadata's) first, then the DNS of every link's
// lease saved under root and not expired at now, in link name order, with
// own in iface's place (its file may still hold the lease being replaced).
// Unreadable lease files are left out: they are their own keeper's to fix.
func keeperDNS(root, iface string, static, own DNS, now time.Time) DNS {
	dir := filepath.Join(root, LeaseDir)
	entries, _ := os.ReadDir(dir) // none yet: only own
	links := []string{iface}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), "lease-")
		if name, ok = strings.CutSuffix(name, ".json"); ok && name != iface {
			links = append(links, name)
		}
	}
	slices.Sort(links)
	dns := static
	for _, name := range links {
		if name == iface {
			dns = mergeDNS(dns, own)
			continue
		}
		l, err := LoadLease(root, name)
		if err != nil {
			continue
		}
		if p, err := l.PlanAt(now); err == nil {
			dns = mergeDNS(dns, p.DNS)
		}
	}
	return dns
}

// dhcpMetricBase plus the link's index is the metric of a DHCP link's
// IPv4 routes, as dhcpcd does: two DHCP links' default routes then stand
// side by side (with one metric, RouteReplace would let the second replace
// the first), and the static side's metrics (0, 100, ...) come first.
const dhcpMetricBase = 1000

// withMetric gives lp's IPv4 routes without a metric the DHCP metric of
// its link. A link that cannot be found is left as it is: Apply says so.
func withMetric(h *netlink.Handle, lp LinkPlan) LinkPlan {
	link, err := h.LinkByName(lp.Name)
	if err != nil {
		return lp
	}
	out := lp
	out.Routes = slices.Clone(lp.Routes)
	for i := range out.Routes {
		if r := &out.Routes[i]; r.Metric == 0 && r.Dst.Addr().Is4() {
			r.Metric = dhcpMetricBase + link.Attrs().Index
		}
	}
	return out
}

// watchCarrier reports the link's carrier (IFF_LOWER_UP) each time it
// changes, from netlink link notifications, until ctx ends.
func watchCarrier(ctx context.Context, name string) (<-chan bool, error) {
	updates := make(chan netlink.LinkUpdate, 16)
	if err := netlink.LinkSubscribeWithOptions(updates, ctx.Done(), netlink.LinkSubscribeOptions{}); err != nil {
		return nil, fmt.Errorf("subscribe to link updates: %w", err)
	}
	out := make(chan bool, 4)
	go func() {
		// Nothing here should panic; if it did, the keeper would go on
		// without link events rather than take the service down.
		defer func() { recover() }()
		last := true // the keeper starts on a link that is up
		for u := range updates {
			if u.Attrs() == nil || u.Attrs().Name != name {
				continue
			}
			up := u.IfInfomsg.Flags&unix.IFF_LOWER_UP != 0 && u.IfInfomsg.Flags&unix.IFF_UP != 0
			if up == last {
				continue
			}
			last = up
			select {
			case out <- up:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
