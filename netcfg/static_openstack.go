package netcfg

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/notos-agent/notos-agent/configdrive"
)

// physicalTypes are the network_data.json link types that the guest sees as
// an Ethernet device (OpenStack's "physical link" list; "" is a null type).
var physicalTypes = []string{"phy", "vif", "ovs", "bridge", "tap", "vhostuser", "hw_veb", "dvs", "ethernet", ""}

// kernelIPv6Types are the network types whose addresses come from router
// advertisements (SLAAC) or DHCPv6, which notos-agent leaves to the kernel.
var kernelIPv6Types = []string{"ipv6_slaac", "ipv6_dhcp", "ipv6_dhcpv6-stateless", "ipv6_dhcpv6-stateful"}

// networkData reads OpenStack's network_data.json.
func (b *planBuilder) networkData(nd *configdrive.NetworkData) {
	byID := map[string]*metaLink{}
	virtual := map[string]configdrive.Link{} // bonds and VLANs, by ID
	for _, l := range nd.Links {
		switch t := strings.ToLower(l.Type); {
		case t == "bond" || t == "vlan":
			virtual[l.ID] = l
			continue
		case !slices.Contains(physicalTypes, t):
			b.warn("link %s: unknown type %q: treated as a physical link", l.ID, l.Type)
		}
		lp := LinkPlan{MAC: strings.ToLower(l.MAC), MTU: l.MTU, Source: SourceNetworkData}
		if lp.MAC == "" {
			// Only a link without a MAC is matched by the cloud's name.
			lp.Name = l.Name
		}
		if lp.MAC == "" && lp.Name == "" {
			b.warn("link %s: neither a MAC address nor a name: not configured", l.ID)
			continue
		}
		if i := slices.IndexFunc(b.links, func(m *metaLink) bool { return lp.MAC != "" && m.plan.MAC == lp.MAC }); i >= 0 {
			b.warn("link %s: MAC %s already used by an earlier link: merged into it", l.ID, lp.MAC)
			byID[l.ID] = b.links[i]
			continue
		}
		m := &metaLink{plan: lp}
		b.links = append(b.links, m)
		byID[l.ID] = m
	}
	for _, l := range nd.Links {
		v, ok := virtual[l.ID]
		if !ok {
			continue
		}
		if strings.EqualFold(v.Type, "bond") {
			// A member sharing the bond's MAC (as the kernel's bond takes its
			// first member's) stays an ordinary link: configuring the bond's
			// address on one member could not work without LACP, which the
			// switch expects from a bond.
			b.warn("link %s: bond (mode %s) of %s not configured: its members are configured as plain links", v.ID, v.BondMode, strings.Join(v.BondLinks, ", "))
		} else {
			b.warn("link %s: VLAN %d on %s not configured", v.ID, v.VLANID, v.VLANLink)
		}
	}
	for _, s := range nd.Services {
		if strings.EqualFold(s.Type, "dns") {
			b.addServer(&b.dns, s.Address, "services")
		}
	}
	for _, n := range nd.Networks {
		l, ok := byID[n.Link]
		if !ok {
			if _, isVirtual := virtual[n.Link]; isVirtual {
				b.warn("network %s (%s) on bond or VLAN %s not configured", n.ID, n.Type, n.Link)
			} else {
				b.warn("network %s: link %q is not in links: ignored", n.ID, n.Link)
			}
			continue
		}
		l.networks++
		b.network(l, n)
	}
}

// network adds one networks[] entry to its link.
func (b *planBuilder) network(l *metaLink, n configdrive.Network) {
	where := "network " + n.ID
	t := strings.ToLower(n.Type)
	switch {
	case t == "ipv4" || t == "ipv6":
		p, err := hostPrefix(n.IPAddress, n.Netmask)
		switch {
		case err != nil:
			b.warn("%s: %v: not configured", where, err)
			return
		case p.Addr().Is4() != (t == "ipv4"):
			b.warn("%s: type %s but address %s: not configured", where, n.Type, p)
			return
		case !usableAddr(p.Addr()):
			b.warn("%s: address %s is not usable: not configured", where, p)
			return
		}
		l.addAddr(p)
		b.routes(l, n, where)
	case t == "ipv4_dhcp":
		l.dhcp4 = true
		if len(n.Routes) > 0 || n.Gateway != "" {
			// The lease's routers and routes are used; a gateway from the
			// metadata is not reachable before the lease arrives.
			b.warn("%s: routes of a DHCP network ignored: the lease's are used", where)
		}
	case slices.Contains(kernelIPv6Types, t):
		if !slices.Contains(l.plan.IPv6, MethodKernel) {
			l.plan.IPv6 = append(l.plan.IPv6, MethodKernel)
		}
		note := ""
		if n.IPAddress != "" {
			note = ", address " + n.IPAddress + " expected from it"
		}
		b.warn("%s: %s left to the kernel's router advertisements (no DHCPv6 client)%s", where, n.Type, note)
	default:
		b.warn("%s: unknown type %q: ignored", where, n.Type)
		return
	}
	for _, s := range n.Services {
		if strings.EqualFold(s.Type, "dns") {
			b.addServer(&l.plan.DNS, s.Address, where)
		}
	}
	for _, s := range n.DNSNameservers {
		b.addServer(&l.plan.DNS, s, where)
	}
}

// routes adds a static network's routes and its network-level gateway
// (not in the spec, seen in the wild), which becomes a default route
// unless the routes already have one of that family.
func (b *planBuilder) routes(l *metaLink, n configdrive.Network, where string) {
	is4 := strings.EqualFold(n.Type, "ipv4")
	hasDefault := false
	for _, r := range n.Routes {
		dst, err := netip.ParseAddr(strings.TrimSpace(r.Network))
		if err != nil || dst.Is4() != is4 {
			b.warn("%s: route to %q: not an address of the network's family: ignored", where, r.Network)
			continue
		}
		bits, err := parseMask(r.Netmask, is4)
		if err != nil {
			b.warn("%s: route to %s: %v: ignored", where, r.Network, err)
			continue
		}
		rt := Route{Dst: netip.PrefixFrom(dst, bits).Masked()}
		if gw := strings.TrimSpace(r.Gateway); gw != "" {
			a, err := netip.ParseAddr(gw)
			switch {
			case err == nil && a.IsUnspecified():
				// 0.0.0.0 or :: as gateway: the destination is on the link.
			case err != nil || a.Is4() != is4 || !usableAddr(a):
				b.warn("%s: route to %s: gateway %q is not usable: ignored", where, rt.Dst, r.Gateway)
				continue
			default:
				rt.Gateway = a
			}
		}
		hasDefault = hasDefault || rt.Dst.Bits() == 0
		l.addRoute(rt)
	}
	if gw := strings.TrimSpace(n.Gateway); gw != "" {
		a, err := netip.ParseAddr(gw)
		switch {
		case err != nil || a.Is4() != is4 || !usableAddr(a):
			b.warn("%s: gateway %q is not usable: ignored", where, n.Gateway)
		case !hasDefault:
			l.addRoute(Route{Dst: netip.PrefixFrom(unspecified(is4), 0), Gateway: a})
		}
	}
}

func unspecified(is4 bool) netip.Addr {
	if is4 {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}
