package mkdrive

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"

	"github.com/notos-agent/notos-agent/configdrive"
)

// doNetwork derives digitalocean_meta_data.json's interfaces, dns and
// features.dhcp_enabled from network_data.json, so that both files of a
// drive describe the same network. Each static IPv4 network on a link with
// a MAC becomes an interface: "public" when it holds the default route
// (DigitalOcean's public NIC carries it), "private" otherwise. DHCP is
// enabled when a network asks for ipv4_dhcp or no static one was derived.
// What DigitalOcean cannot say (IPv6 as a netmask, bonds, VLANs) is left
// out; with nothing static the interface lists are empty.
func doNetwork(network []byte) (doInterfaces, doDNS, doFeatures) {
	ifs := doInterfaces{Public: []doInterface{}, Private: []doInterface{}}
	dns := doDNS{Nameservers: []string{}}
	// configdrive's types mirror network_data.json's fields; decoded raw
	// here, without configdrive's cleaning of quirks.
	var w configdrive.NetworkData
	if err := json.Unmarshal(network, &w); err != nil {
		// Files checked it is an object; a field of an unexpected type
		// only means there is nothing DigitalOcean-shaped to derive.
		return ifs, dns, doFeatures{DHCPEnabled: true}
	}
	macs := map[string]string{}
	for _, l := range w.Links {
		macs[l.ID] = strings.ToLower(l.MAC)
	}
	seen := map[string]bool{}
	addDNS := func(ss []configdrive.Service) {
		for _, s := range ss {
			if s.Type == "dns" && s.Address != "" && !seen[s.Address] {
				seen[s.Address] = true
				dns.Nameservers = append(dns.Nameservers, s.Address)
			}
		}
	}
	addDNS(w.Services)
	dhcp := false
	for _, n := range w.Networks {
		addDNS(n.Services)
		dhcp = dhcp || n.Type == "ipv4_dhcp"
		if n.Type != "ipv4" {
			continue
		}
		ip, mask, ok := ipv4AndMask(n.IPAddress, n.Netmask)
		if !ok || macs[n.Link] == "" {
			continue
		}
		// A network-level gateway is not in the spec but seen in the wild
		// (Talos's fixture); it stands for a default route.
		gw, public := n.Gateway, n.Gateway != ""
		if r, ok := defaultRoute(n.Routes); ok {
			gw, public = r.Gateway, true
		}
		i := doInterface{MAC: macs[n.Link], Type: "private", IPv4: &doIPv4{Address: ip, Netmask: mask, Gateway: gw}}
		if public {
			i.Type = "public"
			ifs.Public = append(ifs.Public, i)
		} else {
			ifs.Private = append(ifs.Private, i)
		}
	}
	static := len(ifs.Public) + len(ifs.Private)
	return ifs, dns, doFeatures{DHCPEnabled: dhcp || static == 0}
}

func defaultRoute(routes []configdrive.Route) (configdrive.Route, bool) {
	for _, r := range routes {
		if r.Network == "0.0.0.0" && (r.Netmask == "0.0.0.0" || r.Netmask == "0") {
			return r, true
		}
	}
	return configdrive.Route{}, false
}

// ipv4AndMask returns a plain IPv4 address and a dotted netmask from
// network_data's ip_address and netmask, which may also come as a CIDR
// address or a prefix length.
func ipv4AndMask(addr, netmask string) (string, string, bool) {
	var bits int
	if p, err := netip.ParsePrefix(addr); err == nil {
		addr, bits = p.Addr().String(), p.Bits()
	} else if n, err := strconv.Atoi(netmask); err == nil {
		bits = n
	} else if m, err := netip.ParseAddr(netmask); err == nil && m.Is4() {
		b := m.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		bits = 0
		for v&0x80000000 != 0 {
			bits++
			v <<= 1
		}
		if v != 0 {
			return "", "", false // not a contiguous mask
		}
	} else {
		return "", "", false
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil || !ip.Is4() || bits < 0 || bits > 32 {
		return "", "", false
	}
	m := ^uint32(0) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	mask := netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)})
	return ip.String(), mask.String(), true
}
