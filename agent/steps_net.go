package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/notos-agent/notos-agent/netcfg"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// network configures the links the way `notos-agent net` does (netcfg.Up:
// static from the metadata, DHCP elsewhere, as --net says; leases saved
// for the stage-2 keeper), and reports the addresses and routes that were
// not there before: a rerun that finds everything in place changes
// nothing (netcfg replaces addresses and routes, never doubles them).
func (r *run) network(ctx context.Context, rec *Record) error {
	cfg := r.config()
	mode, err := netcfg.ParseMode(cfg.Net)
	if err != nil {
		return err
	}
	if mode == netcfg.ModeOff {
		rec.Skip("--net off")
		return nil
	}
	h, err := routeHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	md := r.metadata()
	hostname := ""
	if md != nil {
		hostname, _, _ = ChooseHostname(md)
	}

	// Links the metadata names but that never appear, or a DHCP server
	// that never answers, would hold the network until the overall
	// deadline; stop short of it so that user_data is still saved.
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-netReserve(cfg.Timeout)))
		defer cancel()
	}
	before := snapshot(h)
	res, err := netcfg.Up(ctx, h, netcfg.UpOptions{
		Ifaces:   cfg.Ifaces,
		Root:     r.root,
		SysDir:   r.path("/sys"),
		Mode:     mode,
		Metadata: md,
		DHCP:     netcfg.DHCPOptions{Hostname: hostname},
		Logf:     r.log.Debugf,
	})
	for _, w := range res.Warnings {
		rec.Warn("%s", w)
	}
	for _, c := range snapshot(h).added(before) {
		rec.Changed("%s", c)
	}
	var lines []string
	for _, l := range res.Links {
		lines = append(lines, l.String())
		if l.Lease != nil && l.Err == nil {
			rec.Fact("lease_"+l.Link, l.Lease.Address.String())
		}
	}
	if res.ResolvConf != "" {
		lines = append(lines, "resolv.conf "+string(res.ResolvConf))
		if res.ResolvConf == netcfg.ResolvConfWritten {
			rec.Changed("wrote /etc/resolv.conf")
		}
	}
	rec.Summary("%s", strings.Join(lines, "; "))
	if err == nil && len(res.Links) == 0 {
		return errors.New("no link to configure: no --iface, none in the metadata, no physical Ethernet link in /sys/class/net")
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (stopped %s before the overall deadline, left to the steps after it)", err, netReserve(cfg.Timeout))
	}
	return err
}

// netReserve is the part of the overall deadline the network leaves to
// the steps after it: a twentieth, between half a second and 3 seconds.
func netReserve(timeout time.Duration) time.Duration {
	return min(max(timeout/20, 500*time.Millisecond), 3*time.Second)
}

// routeHandle opens a netlink handle for NETLINK_ROUTE only. With no
// family, netlink.NewHandle opens every family it knows, XFRM included,
// and fails with EPROTONOSUPPORT on a kernel whose xfrm_user is a module
// not loaded (Debian's cloud kernel at boot).
func routeHandle() (*netlink.Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink (NETLINK_ROUTE): %w", err)
	}
	return h, nil
}

// netState is the set of addresses and routes in place, one line each, to
// tell what a step added.
type netState map[string]bool

// snapshot lists every link's addresses and routes; what cannot be read
// is left out (the difference is a report, not a decision).
func snapshot(h *netlink.Handle) netState {
	s := netState{}
	links, err := h.LinkList()
	if err != nil {
		return s
	}
	for _, link := range links {
		name := link.Attrs().Name
		addrs, _ := h.AddrList(link, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				ones, _ := a.Mask.Size()
				s[fmt.Sprintf("%s: address %s", name, netip.PrefixFrom(ip.Unmap(), ones))] = true
			}
		}
		routes, _ := h.RouteList(link, netlink.FAMILY_ALL)
		for _, rt := range routes {
			dst := "default"
			if ones, _ := rt.Dst.Mask.Size(); rt.Dst != nil && ones > 0 {
				dst = rt.Dst.String()
			}
			line := fmt.Sprintf("%s: route %s", name, dst)
			if rt.Gw != nil {
				line += " via " + rt.Gw.String()
			}
			s[line] = true
		}
	}
	return s
}

// added lists, sorted, what s has and before had not.
func (s netState) added(before netState) []string {
	var out []string
	for k := range s {
		if !before[k] {
			out = append(out, "added "+k)
		}
	}
	slices.Sort(out)
	return out
}
