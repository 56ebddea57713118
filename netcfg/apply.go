package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ApplyOptions says where and how Apply writes what is not netlink.
type ApplyOptions struct {
	// Root is the directory holding etc/resolv.conf; "" is "/".
	Root string
	// ResolvConf is ResolvConfWrite (the default) or ResolvConfSkip.
	ResolvConf ResolvConfMode
	// Resolvconf is the resolvconf program handed the servers when
	// resolv.conf is a symbolic link. "" looks it up on PATH, but only when
	// Root is "/": a program of the running system must not be fed a
	// test's DNS.
	Resolvconf string
}

// Result is what Apply did.
type Result struct {
	Links      []LinkResult
	ResolvConf ResolvConfOutcome
	// Warnings are things left alone on purpose (an MTU out of bounds, a
	// symlinked resolv.conf with no resolvconf program, an unsafe name).
	Warnings []string
}

// LinkResult is what Apply did to one link.
type LinkResult struct {
	Name   string
	Index  int
	Method Method
	MTU    int            // the MTU set, 0 when left as it was
	Addrs  []netip.Prefix // addresses in place
	Routes []Route        // routes in place
	Err    error          // every item that failed, joined
}

// String is the link's one log line: "eth0 static 192.0.2.10/24, default
// via 192.0.2.1, mtu 1450".
func (r LinkResult) String() string {
	parts := []string{}
	for _, a := range r.Addrs {
		parts = append(parts, a.String())
	}
	for _, rt := range r.Routes {
		if !rt.Gateway.IsValid() {
			continue // on-link helpers: noise in a log line
		}
		dst := rt.Dst.String()
		if rt.Dst.Bits() == 0 {
			dst = "default"
		}
		parts = append(parts, dst+" via "+rt.Gateway.String())
	}
	if r.MTU != 0 {
		parts = append(parts, fmt.Sprintf("mtu %d", r.MTU))
	}
	s := fmt.Sprintf("%s %s %s", r.Name, r.Method, strings.Join(parts, ", "))
	if r.Err != nil {
		s += fmt.Sprintf(" (errors: %v)", strings.ReplaceAll(r.Err.Error(), "\n", "; "))
	}
	return strings.TrimSpace(s)
}

// Apply puts the plan in place through h: for each link, its MTU
// (bounded to 576..9000), up, its addresses (AddrReplace, with the
// lifetimes of Addr) and its routes (RouteReplace, in plan order, so an
// on-link host route comes before the route through its gateway); then
// resolv.conf from p.DNS. Replacing makes it idempotent: applying a plan
// twice leaves one of each address and route. A failed item does not stop
// the others; the error joins every failure, each naming its call and
// object. Links with MethodOff are left alone; for the other methods the
// plan's addresses and routes are applied as given (a DHCP link's come
// from its lease plan).
func Apply(ctx context.Context, h *netlink.Handle, p Plan, o ApplyOptions) (Result, error) {
	var res Result
	var errs []error
	firstName := ""
	for _, lp := range p.Links {
		if lp.Method == MethodOff {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("apply link %s: %w", linkID(lp), err))
			break
		}
		lr, warns := applyLink(h, lp)
		res.Links = append(res.Links, lr)
		res.Warnings = append(res.Warnings, warns...)
		if lr.Err != nil {
			errs = append(errs, lr.Err)
		}
		if firstName == "" && lr.Index != 0 {
			firstName = lr.Name
		}
	}
	out, warns, err := UpdateResolvConf(ctx, p.DNS, ResolvConfOptions{
		Root: o.Root, Mode: o.ResolvConf, Program: o.Resolvconf, Name: firstName,
	})
	res.ResolvConf = out
	res.Warnings = append(res.Warnings, warns...)
	if err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// FindLink returns the link lp names: by Name when set, else by MAC.
func FindLink(h *netlink.Handle, lp LinkPlan) (netlink.Link, error) {
	if lp.Name != "" {
		l, err := h.LinkByName(lp.Name)
		if err != nil {
			return nil, fmt.Errorf("find link %s: %w", lp.Name, err)
		}
		return l, nil
	}
	if lp.MAC == "" {
		return nil, errors.New("find link: the plan names neither a link nor a MAC address")
	}
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("find link %s: list links: %w", lp.MAC, err)
	}
	ref := LinkRef{MAC: lp.MAC}
	for _, l := range links {
		if ref.matches(l.Attrs().Name, l.Attrs().HardwareAddr) {
			return l, nil
		}
	}
	return nil, fmt.Errorf("find link %s: %w", lp.MAC, ErrLinkMissing)
}

func applyLink(h *netlink.Handle, lp LinkPlan) (LinkResult, []string) {
	lr := LinkResult{Name: lp.Name, Method: lp.Method}
	var warns, errs []string
	link, err := FindLink(h, lp)
	if err != nil {
		lr.Err = err
		return lr, nil
	}
	a := link.Attrs()
	lr.Name, lr.Index = a.Name, a.Index
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Sprintf(format, args...))
	}

	if lp.MTU != 0 {
		mtu := min(max(lp.MTU, minMTU), maxMTU)
		if mtu != lp.MTU {
			warns = append(warns, fmt.Sprintf("link %s: MTU %d outside %d..%d: using %d", a.Name, lp.MTU, minMTU, maxMTU, mtu))
		}
		if a.MTU != mtu {
			if err := h.LinkSetMTU(link, mtu); err != nil {
				fail("set MTU %d on %s: %v", mtu, a.Name, err)
			} else {
				lr.MTU = mtu
			}
		} else {
			lr.MTU = mtu
		}
	}
	// A route through a link that is down is refused (ENETDOWN).
	if a.Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			fail("set %s up: %v", a.Name, err)
		}
	}
	for _, ad := range lp.Addrs {
		na := netlinkAddr(ad)
		if err := h.AddrReplace(link, na); err != nil {
			fail("add address %s to %s: %v", ad.Prefix, a.Name, err)
			continue
		}
		lr.Addrs = append(lr.Addrs, ad.Prefix)
	}
	for _, r := range lp.Routes {
		nr := netlinkRoute(a.Index, r, lp.Source == "dhcp")
		if err := h.RouteReplace(nr); err != nil {
			fail("add route %s on %s: %v", describeRoute(r), a.Name, err)
			continue
		}
		lr.Routes = append(lr.Routes, r)
	}
	if len(errs) > 0 {
		lr.Err = fmt.Errorf("link %s: %s", a.Name, strings.Join(errs, "; "))
	}
	return lr, warns
}

// Remove takes away what applying lp added: its routes (in reverse order)
// and its addresses, as the DHCP keeper does when a lease expires. Items
// already gone are not errors. The link's MTU and state are left alone.
func Remove(ctx context.Context, h *netlink.Handle, lp LinkPlan) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove link %s: %w", linkID(lp), err)
	}
	link, err := FindLink(h, lp)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	a := link.Attrs()
	var errs []error
	for i := len(lp.Routes) - 1; i >= 0; i-- {
		r := lp.Routes[i]
		err := h.RouteDel(netlinkRoute(a.Index, r, lp.Source == "dhcp"))
		// ESRCH: no such route, already gone (deleting the address on
		// which it depended removes it too).
		if err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s on %s: %w", describeRoute(r), a.Name, err))
		}
	}
	for _, ad := range lp.Addrs {
		err := h.AddrDel(link, netlinkAddr(ad))
		// EADDRNOTAVAIL: the address is not there (the kernel may have
		// dropped it at the end of its valid lifetime).
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("delete address %s from %s: %w", ad.Prefix, a.Name, err))
		}
	}
	return errors.Join(errs...)
}

func netlinkAddr(a Addr) *netlink.Addr {
	na := &netlink.Addr{IPNet: ipNet(a.Prefix)}
	if a.Broadcast.IsValid() {
		na.Broadcast = a.Broadcast.AsSlice()
	}
	na.ValidLft, na.PreferedLft = lifetimes(a)
	return na
}

// infiniteLft is the kernel's INFINITY_LIFE_TIME.
const infiniteLft = 0xffffffff

// lifetimes turns Addr's lifetimes into the kernel's seconds. Both zero
// means forever, sent as no lifetime at all. A missing preferred lifetime
// is the valid one: sent as 0 it would make the address deprecated at
// once.
func lifetimes(a Addr) (valid, preferred int) {
	if a.Valid <= 0 && a.Preferred <= 0 {
		return 0, 0
	}
	secs := func(d time.Duration) int {
		s := (d + time.Second - 1) / time.Second // round up: never expire early
		if d <= 0 || s >= infiniteLft {
			return infiniteLft
		}
		return int(s)
	}
	valid = secs(a.Valid)
	preferred = valid
	if a.Preferred > 0 {
		preferred = min(secs(a.Preferred), valid)
	}
	return valid, preferred
}

func netlinkRoute(index int, r Route, dhcp bool) *netlink.Route {
	nr := &netlink.Route{
		LinkIndex: index,
		Dst:       ipNet(r.Dst.Masked()),
		Priority:  r.Metric,
		Protocol:  unix.RTPROT_STATIC,
	}
	if dhcp {
		nr.Protocol = unix.RTPROT_DHCP
	}
	if r.Gateway.IsValid() {
		nr.Gw = r.Gateway.AsSlice()
	} else if r.Dst.Addr().Is4() {
		// Directly connected: the destination is on this link. (IPv6
		// routes have no scope of their own.)
		nr.Scope = netlink.SCOPE_LINK
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	return nr
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func describeRoute(r Route) string {
	if r.Gateway.IsValid() {
		return r.Dst.String() + " via " + r.Gateway.String()
	}
	return r.Dst.String() + " on-link"
}
