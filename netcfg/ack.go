package netcfg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// MTU bounds for option 26. RFC 2132 §5.1 sets 68 as the floor, but no
// IPv4 link a VM boots on is smaller than 576 (RFC 791's minimum datagram
// every host must accept) or larger than a 9000-byte jumbo frame; a value
// outside is clamped, with a warning, rather than trusted.
const (
	minMTU = 576
	maxMTU = 9000
)

// infiniteLease is option 51's 0xffffffff: RFC 2131 §3.3 "infinity".
const infiniteLease = time.Duration(0xffffffff) * time.Second

// ErrBadACK is wrapped by every error ACKToPlan returns: the ACK cannot be
// used at all (no address, a non-contiguous netmask, a zero lease, ...).
var ErrBadACK = errors.New("unusable DHCPACK")

// ACKToPlan turns a DHCPACK received on iface at acquired into a plan for
// that one link. It is pure: it reads only the packet.
//
// The address, its mask, the lease time and the server identifier must be
// usable, else it returns an error wrapping ErrBadACK. Everything else is
// optional: a malformed optional option is left out and named in
// Plan.Warnings, never applied.
func ACKToPlan(iface string, ack *dhcpv4.DHCPv4, acquired time.Time) (Plan, error) {
	var p Plan
	warn := func(format string, args ...any) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("dhcp %s: ", iface)+fmt.Sprintf(format, args...))
	}
	bad := func(format string, args ...any) (Plan, error) {
		return Plan{}, fmt.Errorf("%w on %s: %s", ErrBadACK, iface, fmt.Sprintf(format, args...))
	}
	if ack == nil {
		return bad("no packet")
	}
	if t := ack.MessageType(); t != dhcpv4.MessageTypeAck {
		return bad("message type %s, want ACK", t)
	}

	addr, ok := netip.AddrFromSlice(ack.YourIPAddr)
	if ok {
		addr = addr.Unmap()
	}
	if !ok || !addr.Is4() || !usableHost(addr) {
		return bad("yiaddr %v is not a usable IPv4 address", ack.YourIPAddr)
	}

	bits, err := prefixLen(ack, addr, warn)
	if err != nil {
		return bad("%v", err)
	}
	prefix := netip.PrefixFrom(addr, bits)

	lease, err := leaseTimes(ack, warn)
	if err != nil {
		return bad("%v", err)
	}
	server, ok := ipOption(ack, dhcpv4.OptionServerIdentifier)
	if !ok || !usableHost(server) {
		// RFC 2131 §4.3.1 Table 3: the server identifier MUST be in an
		// ACK; without it the lease can be neither renewed nor released.
		return bad("no usable server identifier (option 54)")
	}
	lease.Interface = iface
	lease.Address = prefix
	lease.Server = server
	lease.Acquired = acquired
	lease.ACK = ack.ToBytes()

	lp := LinkPlan{
		Name:   iface,
		MAC:    strings.ToLower(ack.ClientHWAddr.String()),
		Method: MethodDHCP,
		Source: "dhcp",
		Lease:  &lease,
	}
	a := Addr{Prefix: prefix, Broadcast: broadcast(ack, prefix, warn)}
	if lease.Duration != infiniteLease {
		// The kernel drops the address when the lease ends, even when
		// notos-agent is not there to do it.
		a.Valid, a.Preferred = lease.Duration, lease.Duration
	}
	lp.Addrs = []Addr{a}
	lp.Routes = routes(ack, prefix, warn)
	lp.MTU = mtu(ack, warn)
	lp.DNS = dnsOptions(ack, warn)
	if raw := ack.Options.Get(dhcpv4.OptionHostName); raw != nil {
		if name, ok := dnsName(raw); ok {
			lease.Hostname = name
		} else {
			warn("host name (option 12) %q is not a valid DNS name: ignored", raw)
		}
	}
	p.Links = []LinkPlan{lp}
	p.DNS = lp.DNS
	return p, nil
}

// usableHost reports whether a can be a host's or a server's address.
func usableHost(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func ipOption(ack *dhcpv4.DHCPv4, code dhcpv4.OptionCode) (netip.Addr, bool) {
	raw := ack.Options.Get(code)
	if len(raw) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(raw)), true
}

// prefixLen reads option 1. A missing mask falls back to the address's
// class (RFC 791's class A/B/C, as RFC 2131 §4.3.1 leaves the mask
// optional); a non-contiguous one is refused.
func prefixLen(ack *dhcpv4.DHCPv4, addr netip.Addr, warn func(string, ...any)) (int, error) {
	raw := ack.Options.Get(dhcpv4.OptionSubnetMask)
	if raw == nil {
		b := addr.As4()[0]
		var bits int
		switch {
		case b < 128:
			bits = 8
		case b < 192:
			bits = 16
		case b < 224:
			bits = 24
		default:
			return 0, fmt.Errorf("no subnet mask (option 1) and %s has no class", addr)
		}
		warn("no subnet mask (option 1): using the classful /%d", bits)
		return bits, nil
	}
	if len(raw) != 4 {
		return 0, fmt.Errorf("subnet mask (option 1) is %d bytes, want 4", len(raw))
	}
	m := binary.BigEndian.Uint32(raw)
	bits := 0
	for m&0x80000000 != 0 {
		bits++
		m <<= 1
	}
	if m != 0 {
		return 0, fmt.Errorf("subnet mask (option 1) %d.%d.%d.%d is not contiguous", raw[0], raw[1], raw[2], raw[3])
	}
	if bits == 0 {
		return 0, fmt.Errorf("subnet mask (option 1) is 0.0.0.0")
	}
	if bits < 31 && (addr == netip.PrefixFrom(addr, bits).Masked().Addr() || addr == lastAddr(netip.PrefixFrom(addr, bits))) {
		return 0, fmt.Errorf("yiaddr %s is the network or broadcast address of its /%d", addr, bits)
	}
	return bits, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	n := binary.BigEndian.Uint32(b[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}

// leaseTimes reads options 51, 58 and 59. A lease of zero is refused. T1
// and T2 default to 0.5 and 0.875 of the lease (RFC 2131 §4.4.5) and are
// reset to those when the server sends values out of order.
func leaseTimes(ack *dhcpv4.DHCPv4, warn func(string, ...any)) (Lease, error) {
	secs := func(code dhcpv4.OptionCode) (time.Duration, bool, error) {
		raw := ack.Options.Get(code)
		if raw == nil {
			return 0, false, nil
		}
		if len(raw) != 4 {
			return 0, true, fmt.Errorf("option %d is %d bytes, want 4", code.Code(), len(raw))
		}
		return time.Duration(binary.BigEndian.Uint32(raw)) * time.Second, true, nil
	}
	d, ok, err := secs(dhcpv4.OptionIPAddressLeaseTime)
	switch {
	case err != nil:
		return Lease{}, fmt.Errorf("lease time: %w", err)
	case !ok:
		// RFC 2131 §4.3.1 Table 3: an ACK to a REQUEST MUST carry it.
		return Lease{}, errors.New("no lease time (option 51)")
	case d == 0:
		return Lease{}, errors.New("lease time (option 51) is zero")
	}
	l := Lease{Duration: d, T1: d / 2, T2: rebindTime(d)}
	if d == infiniteLease {
		l.T1, l.T2 = infiniteLease, infiniteLease
		return l, nil
	}
	t1, ok1, err1 := secs(dhcpv4.OptionRenewTimeValue)
	t2, ok2, err2 := secs(dhcpv4.OptionRebindingTimeValue)
	if err := errors.Join(err1, err2); err != nil {
		warn("renewal times: %v: using the defaults", err)
		return l, nil
	}
	if ok2 {
		l.T2 = t2
	}
	if ok1 {
		l.T1 = t1
	}
	if !(0 < l.T1 && l.T1 <= l.T2 && l.T2 < d) {
		warn("T1 %s, T2 %s out of order for a lease of %s: using 0.5 and 0.875 of the lease", l.T1, l.T2, d)
		l.T1, l.T2 = d/2, rebindTime(d)
	}
	return l, nil
}

// rebindTime is RFC 2131 §4.4.5's default T2, 0.875 of the lease. d*7/8
// would overflow: a lease of 2^32-1 seconds is 4.3e18 ns, and seven times
// that is past the int64 range.
func rebindTime(d time.Duration) time.Duration { return d - d/8 }

// broadcast is option 28 when it is the prefix's own broadcast address,
// else the computed one (none on /31 and /32, RFC 3021).
func broadcast(ack *dhcpv4.DHCPv4, prefix netip.Prefix, warn func(string, ...any)) netip.Addr {
	var computed netip.Addr
	if prefix.Bits() < 31 {
		computed = lastAddr(prefix)
	}
	raw := ack.Options.Get(dhcpv4.OptionBroadcastAddress)
	if raw == nil {
		return computed
	}
	b, ok := ipOption(ack, dhcpv4.OptionBroadcastAddress)
	switch {
	case !ok:
		warn("broadcast address (option 28) is %d bytes, want 4: ignored", len(raw))
		return computed
	case !computed.IsValid() || !prefix.Contains(b):
		warn("broadcast address (option 28) %s does not fit %s: ignored", b, prefix)
		return computed
	}
	return b
}

// routes builds the link's routes. RFC 3442 §3: when option 121 is present,
// option 3 is ignored. A gateway outside every on-link prefix (a /32 lease,
// common in clouds) gets an on-link host route first, or the kernel refuses
// the route with ENETUNREACH.
func routes(ack *dhcpv4.DHCPv4, prefix netip.Prefix, warn func(string, ...any)) []Route {
	var rs []Route
	if raw := ack.Options.Get(dhcpv4.OptionClasslessStaticRoute); raw != nil {
		var err error
		if rs, err = ParseClasslessRoutes(raw); err != nil {
			warn("classless static routes (option 121): %v: ignored, using option 3", err)
			rs = nil
		} else if len(rs) == 0 {
			warn("classless static routes (option 121) is empty: using option 3")
		}
	}
	if rs == nil {
		if raw := ack.Options.Get(dhcpv4.OptionRouter); raw != nil {
			gw, ok := netip.Addr{}, len(raw) >= 4 && len(raw)%4 == 0
			if ok {
				gw = netip.AddrFrom4([4]byte(raw[:4]))
			}
			switch {
			case !ok:
				warn("router (option 3) is %d bytes, not a list of addresses: no default route", len(raw))
			case !usableHost(gw) || gw == prefix.Addr():
				warn("router (option 3) %s is not a usable gateway: no default route", gw)
			default:
				// The first router is the default gateway; RFC 2132 §3.5
				// lists the others in order of preference only.
				rs = []Route{{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Gateway: gw}}
			}
		}
	}
	var out []Route
	onLink := []netip.Prefix{prefix}
	for _, r := range rs {
		if !r.Gateway.IsValid() {
			onLink = append(onLink, r.Dst)
		}
	}
	reachable := func(gw netip.Addr) bool {
		for _, p := range onLink {
			if p.Contains(gw) {
				return true
			}
		}
		return false
	}
	for _, r := range rs {
		if r.Gateway.IsValid() && !reachable(r.Gateway) {
			host := netip.PrefixFrom(r.Gateway, 32)
			out = append(out, Route{Dst: host})
			onLink = append(onLink, host)
		}
		out = append(out, r)
	}
	return out
}

// ParseClasslessRoutes decodes option 121 (RFC 3442 §3): a list of
// (width, significant octets of the destination, 4-octet router). A router
// of 0.0.0.0 means the destination is on the link. Destination bits past
// the width are cleared.
func ParseClasslessRoutes(b []byte) ([]Route, error) {
	var rs []Route
	for i := 0; i < len(b); {
		width := int(b[i])
		if width > 32 {
			return nil, fmt.Errorf("route at byte %d: prefix length %d > 32", i, width)
		}
		n := (width + 7) / 8
		if i+1+n+4 > len(b) {
			return nil, fmt.Errorf("route at byte %d: truncated (%d bytes left, need %d)", i, len(b)-i, 1+n+4)
		}
		var dst [4]byte
		copy(dst[:], b[i+1:i+1+n])
		gw := netip.AddrFrom4([4]byte(b[i+1+n : i+1+n+4]))
		i += 1 + n + 4
		r := Route{Dst: netip.PrefixFrom(netip.AddrFrom4(dst), width).Masked()}
		if !gw.IsUnspecified() {
			if !usableHost(gw) {
				return nil, fmt.Errorf("route to %s: router %s is not a usable gateway", r.Dst, gw)
			}
			r.Gateway = gw
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func mtu(ack *dhcpv4.DHCPv4, warn func(string, ...any)) int {
	raw := ack.Options.Get(dhcpv4.OptionInterfaceMTU)
	if raw == nil {
		return 0
	}
	if len(raw) != 2 {
		warn("interface MTU (option 26) is %d bytes, want 2: ignored", len(raw))
		return 0
	}
	m := int(binary.BigEndian.Uint16(raw))
	switch {
	case m < minMTU:
		warn("interface MTU (option 26) %d below %d: using %d", m, minMTU, minMTU)
		return minMTU
	case m > maxMTU:
		warn("interface MTU (option 26) %d above %d: using %d", m, maxMTU, maxMTU)
		return maxMTU
	}
	return m
}

// dnsOptions reads options 6, 15 and 119. Names are kept only when they
// are valid DNS names: a server's string goes into resolv.conf, where a
// newline or a ';' would add lines of its own.
func dnsOptions(ack *dhcpv4.DHCPv4, warn func(string, ...any)) DNS {
	var d DNS
	if raw := ack.Options.Get(dhcpv4.OptionDomainNameServer); raw != nil {
		if len(raw)%4 != 0 {
			warn("DNS servers (option 6) is %d bytes, not a list of addresses: ignored", len(raw))
		} else {
			for i := 0; i < len(raw); i += 4 {
				a := netip.AddrFrom4([4]byte(raw[i : i+4]))
				if !usableHost(a) && !a.IsLoopback() {
					warn("DNS server (option 6) %s: ignored", a)
					continue
				}
				d.Servers = append(d.Servers, a)
			}
		}
	}
	if raw := ack.Options.Get(dhcpv4.OptionDomainName); raw != nil {
		if name, ok := dnsName(raw); ok {
			d.Domain = name
		} else {
			warn("domain name (option 15) %q is not a valid DNS name: ignored", raw)
		}
	}
	if raw := ack.Options.Get(dhcpv4.OptionDNSDomainSearchList); raw != nil {
		labels, err := rfc1035label.FromBytes(raw)
		if err != nil {
			warn("domain search list (option 119): %v: ignored", err)
		} else {
			for _, s := range labels.Labels {
				if name, ok := dnsName([]byte(s)); ok {
					d.Search = append(d.Search, name)
				} else {
					warn("search domain (option 119) %q is not a valid DNS name: ignored", s)
				}
			}
		}
	}
	return d
}

// dnsName validates a name a DHCP server sent (RFC 1035 §2.3.1, with '_'
// allowed as real zones use it): labels of 1 to 63 letters, digits, '-' or
// '_', not starting or ending with '-', 253 bytes at most. One trailing NUL
// (RFC 2132 §2 says not to send it; servers do) and one trailing dot are
// dropped.
func dnsName(raw []byte) (string, bool) {
	s := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\x00"), ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return s, true
}
