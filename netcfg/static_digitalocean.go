package netcfg

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/notos-agent/notos-agent/configdrive"
)

// digitalOcean reads digitalocean_meta_data.json: public interfaces get
// their ipv4 and ipv6 addresses and the default routes, anchor_ipv4 (the
// reserved-IP anchor) an address only, private interfaces an address only
// (their gateway field is ignored: the private network is on-link).
func (b *planBuilder) digitalOcean(do *configdrive.DigitalOcean) {
	for _, group := range []struct {
		kind   string
		ifaces []configdrive.DOInterface
	}{{"public", do.Public}, {"private", do.Private}} {
		for i, in := range group.ifaces {
			where := fmt.Sprintf("interfaces.%s[%d]", group.kind, i)
			if in.MAC == "" {
				b.warn("%s: no MAC address: not configured", where)
				continue
			}
			l := &metaLink{plan: LinkPlan{MAC: strings.ToLower(in.MAC), Source: SourceDigitalOcean}}
			b.links = append(b.links, l)
			public := group.kind == "public"
			if in.IPv4 != nil {
				b.doIPv4(l, *in.IPv4, where+".ipv4", public)
			}
			if in.AnchorIPv4 != nil {
				b.doIPv4(l, *in.AnchorIPv4, where+".anchor_ipv4", false)
			}
			if in.IPv6 != nil {
				b.doIPv6(l, *in.IPv6, where+".ipv6", public)
			}
		}
	}
	for _, s := range do.Nameservers {
		b.addServer(&b.dns, s, "dns.nameservers")
	}
}

func (b *planBuilder) doIPv4(l *metaLink, v configdrive.DOIPv4, where string, withGateway bool) {
	p, err := hostPrefix(v.Address, v.Netmask)
	if err != nil || !p.Addr().Is4() || !usableAddr(p.Addr()) {
		b.warn("%s: address %q netmask %q is not a usable IPv4 address: not configured", where, v.Address, v.Netmask)
		return
	}
	l.addAddr(p)
	if withGateway && v.Gateway != "" {
		b.doGateway(l, v.Gateway, true, where)
	}
}

// doIPv6 reads an ipv6 block; DigitalOcean sends the address upper case and
// zero padded (2A03:B0C0:0002:00D0:...), which netip accepts and String
// writes in the canonical form.
func (b *planBuilder) doIPv6(l *metaLink, v configdrive.DOIPv6, where string, withGateway bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(v.Address))
	if err != nil || !a.Is6() || a.Is4In6() || !usableAddr(a) || v.CIDR < 1 || v.CIDR > 128 {
		b.warn("%s: address %q cidr %d is not a usable IPv6 address: not configured", where, v.Address, v.CIDR)
		return
	}
	l.addAddr(netip.PrefixFrom(a, v.CIDR))
	if withGateway && v.Gateway != "" {
		b.doGateway(l, v.Gateway, false, where)
	}
}

func (b *planBuilder) doGateway(l *metaLink, gw string, is4 bool, where string) {
	a, err := netip.ParseAddr(strings.TrimSpace(gw))
	if err != nil || a.Is4() != is4 || !usableAddr(a) {
		b.warn("%s: gateway %q is not usable: no default route", where, gw)
		return
	}
	l.addRoute(Route{Dst: netip.PrefixFrom(unspecified(is4), 0), Gateway: a})
}
