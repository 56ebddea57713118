package netcfg

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/notos-agent/notos-agent/configdrive"
)

// Mode is the --net flag: where addresses come from.
type Mode string

const (
	// ModeAuto: static where the metadata configures a link, DHCP on every
	// other chosen link.
	ModeAuto Mode = "auto"
	// ModeDHCP: DHCP on every chosen link; static addresses are ignored.
	ModeDHCP Mode = "dhcp"
	// ModeStatic: only what the metadata configures; no DHCP at all.
	ModeStatic Mode = "static"
	// ModeOff: no network configuration.
	ModeOff Mode = "off"
)

// ParseMode reads a --net value; "" is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeDHCP, ModeStatic, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("network mode %q: want auto, dhcp, static or off", s)
}

// Sources named in LinkPlan.Source.
const (
	SourceNetworkData  = "network_data.json"
	SourceDigitalOcean = "digitalocean_meta_data.json"
)

// PlanFromMetadata turns a config drive's network description into a Plan.
// It is pure: it reads only md.
//
// When digitalocean_meta_data.json describes interfaces, it wins over
// network_data.json: DigitalOcean generates both from the same data, but
// only its own file says which interface is public (the one that gets the
// default route) and carries the anchor address.
//
// Links are identified by MAC (LinkPlan.MAC, lower case), and LinkPlan.Name
// is set only for a network_data.json link that has a name and no MAC: the
// names in the metadata (nic0, eth2) are the cloud's, not the guest
// kernel's. Bonds and VLANs are not configured (a Warning says so); their
// member links stay ordinary links. Links the metadata lists without an
// IPv4 configuration get DHCP in ModeAuto and ModeDHCP; links the metadata
// does not list are the caller's to add (see ForLinks).
//
// An item that cannot be used (an address that does not parse, a route with
// a bad netmask) is left out and named in Plan.Warnings; the rest is kept.
func PlanFromMetadata(md *configdrive.Metadata, mode Mode) (Plan, error) {
	if _, err := ParseMode(string(mode)); err != nil {
		return Plan{}, err
	}
	var b planBuilder
	switch {
	case md == nil || mode == ModeOff:
		return Plan{}, nil
	case md.DigitalOcean != nil && len(md.DigitalOcean.Public)+len(md.DigitalOcean.Private) > 0:
		if md.Network != nil {
			b.warn("%s ignored: %s describes the network", SourceNetworkData, SourceDigitalOcean)
		}
		b.digitalOcean(md.DigitalOcean)
	case md.Network != nil:
		b.networkData(md.Network)
	default:
		return Plan{}, nil
	}
	return b.finish(mode), nil
}

// planBuilder collects links in metadata order, then finish applies the
// mode and settles route metrics.
type planBuilder struct {
	links    []*metaLink
	dns      DNS
	warnings []string
}

// metaLink is a link as the metadata describes it, before the mode is
// applied.
type metaLink struct {
	plan     LinkPlan
	static4  bool // an IPv4 address from the metadata
	static6  bool // an IPv6 address from the metadata
	dhcp4    bool // an ipv4_dhcp network
	networks int  // networks that named this link
}

func (b *planBuilder) warn(format string, args ...any) {
	b.warnings = append(b.warnings, fmt.Sprintf(format, args...))
}

func (b *planBuilder) addServer(to *DNS, s string, where string) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.IsUnspecified() || a.IsMulticast() {
		b.warn("%s: DNS server %q is not a usable address: ignored", where, s)
		return
	}
	if !slices.Contains(to.Servers, a) {
		to.Servers = append(to.Servers, a)
	}
}

// finish applies the mode. ModeDHCP drops static addresses, routes and DNS
// (the lease brings its own); ModeStatic drops DHCP and links with nothing
// static.
func (b *planBuilder) finish(mode Mode) Plan {
	p := Plan{Warnings: b.warnings}
	for _, l := range b.links {
		lp := l.plan
		switch {
		case mode == ModeDHCP:
			if len(lp.Addrs) > 0 {
				p.Warnings = append(p.Warnings, fmt.Sprintf("link %s: static addresses from %s ignored in mode dhcp", linkID(lp), lp.Source))
			}
			lp.Method, lp.Addrs, lp.Routes, lp.DNS = MethodDHCP, nil, nil, DNS{}
		case l.static4:
			lp.Method = MethodStatic
		case l.dhcp4 && mode != ModeStatic:
			// Static IPv6 addresses, if any, are applied beside the lease.
			lp.Method = MethodDHCP
		case l.dhcp4 && !l.static6 && len(lp.IPv6) == 0:
			p.Warnings = append(p.Warnings, fmt.Sprintf("link %s: ipv4_dhcp not run in mode static: link not configured", linkID(lp)))
			continue
		case l.dhcp4:
			p.Warnings = append(p.Warnings, fmt.Sprintf("link %s: ipv4_dhcp not run in mode static: IPv6 only", linkID(lp)))
			lp.Method = MethodStatic
			if !l.static6 {
				lp.Method = MethodKernel
			}
		case l.static6:
			lp.Method = MethodStatic
		case len(lp.IPv6) > 0:
			// The metadata describes the link fully: IPv6 from router
			// advertisements and no IPv4.
			lp.Method = MethodKernel
		case mode == ModeStatic:
			continue
		default:
			lp.Method = MethodDHCP
		}
		p.Links = append(p.Links, lp)
	}
	// ModeDHCP: the leases bring DNS. No link: no use for servers.
	if mode != ModeDHCP && len(p.Links) > 0 {
		p.DNS = b.dns
		for _, lp := range p.Links {
			for _, s := range lp.DNS.Servers {
				if !slices.Contains(p.DNS.Servers, s) {
					p.DNS.Servers = append(p.DNS.Servers, s)
				}
			}
		}
	}
	separateMetrics(p.Links)
	return p
}

// separateMetrics gives a route whose destination and metric another route
// already has (two links each with a default route, or one network with two
// default gateways) a metric 100 higher, so that its RouteReplace adds a
// route instead of replacing the other. The first in plan order keeps its
// metric.
func separateMetrics(links []LinkPlan) {
	type key struct {
		dst    netip.Prefix
		metric int
	}
	taken := map[key]bool{}
	for i := range links {
		for j := range links[i].Routes {
			r := &links[i].Routes[j]
			for taken[key{r.Dst, r.Metric}] {
				r.Metric += 100
			}
			taken[key{r.Dst, r.Metric}] = true
		}
	}
}

func linkID(lp LinkPlan) string {
	if lp.MAC != "" {
		return lp.MAC
	}
	return lp.Name
}

// addRoute appends r to l's routes, preceded by an on-link host route to
// its gateway when the gateway is outside every prefix on the link: the
// kernel refuses a route through an unreachable gateway (ENETUNREACH).
// Exact duplicates are dropped.
func (l *metaLink) addRoute(r Route) {
	if r.Gateway.IsValid() && !l.onLink(r.Gateway) {
		l.appendRoute(Route{Dst: netip.PrefixFrom(r.Gateway, r.Gateway.BitLen())})
	}
	l.appendRoute(r)
}

func (l *metaLink) appendRoute(r Route) {
	if !slices.Contains(l.plan.Routes, r) {
		l.plan.Routes = append(l.plan.Routes, r)
	}
}

func (l *metaLink) onLink(gw netip.Addr) bool {
	if gw.Is6() && gw.IsLinkLocalUnicast() {
		return true // RFC 4861 §4.2: a link-local router is on the link
	}
	for _, a := range l.plan.Addrs {
		if a.Prefix.Masked().Contains(gw) {
			return true
		}
	}
	for _, r := range l.plan.Routes {
		if !r.Gateway.IsValid() && r.Dst.Contains(gw) {
			return true
		}
	}
	return false
}

func (l *metaLink) addAddr(p netip.Prefix) {
	a := Addr{Prefix: p}
	if !slices.Contains(l.plan.Addrs, a) {
		l.plan.Addrs = append(l.plan.Addrs, a)
	}
	if p.Addr().Is4() {
		l.static4 = true
	} else {
		l.static6 = true
	}
}

// parseMask reads a netmask given dotted (255.255.255.0), in IPv6 mask
// form (ffff:ffff:ffff:ffff::), or as a prefix length ("24", "/24"), for
// an address of the family of addr. A non-contiguous mask is an error.
func parseMask(s string, is4 bool) (int, error) {
	bits := 128
	if is4 {
		bits = 32
	}
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(strings.TrimPrefix(s, "/")); err == nil {
		if n < 0 || n > bits {
			return 0, fmt.Errorf("prefix length %d out of range 0..%d", n, bits)
		}
		return n, nil
	}
	m, err := netip.ParseAddr(s)
	if err != nil {
		return 0, fmt.Errorf("netmask %q: neither an address nor a prefix length", s)
	}
	if m.Is4() != is4 {
		return 0, fmt.Errorf("netmask %q is not of the address's family", s)
	}
	raw := m.AsSlice()
	n := 0
	for n < len(raw)*8 && raw[n/8]&(0x80>>(n%8)) != 0 {
		n++
	}
	// Every bit after the first zero must be zero.
	if p := netip.PrefixFrom(m, n); p.Masked().Addr() != m {
		return 0, fmt.Errorf("netmask %q is not contiguous", s)
	}
	return n, nil
}

// hostPrefix reads an address with its mask: ip_address in CIDR form, or
// plain with netmask.
func hostPrefix(ip, mask string) (netip.Prefix, error) {
	ip = strings.TrimSpace(ip)
	if strings.Contains(ip, "/") {
		p, err := netip.ParsePrefix(ip)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("address %q: %w", ip, err)
		}
		if mask != "" {
			n, err := parseMask(mask, p.Addr().Is4())
			if err != nil || n != p.Bits() {
				return netip.Prefix{}, fmt.Errorf("address %q and netmask %q disagree", ip, mask)
			}
		}
		return p, nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address %q: %w", ip, err)
	}
	if mask == "" {
		return netip.Prefix{}, fmt.Errorf("address %q has no netmask", ip)
	}
	n, err := parseMask(mask, a.Is4())
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, n), nil
}

// usableAddr reports whether a can be an interface's address or a gateway.
func usableAddr(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
