package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// LinkRef names a link: by Name when set, else by MAC (lower case).
type LinkRef struct {
	Name string `json:"name,omitempty"`
	MAC  string `json:"mac,omitempty"`
}

func (r LinkRef) String() string {
	if r.Name != "" {
		return r.Name
	}
	return r.MAC
}

// matches reports whether a link with this name and MAC is the one r names.
func (r LinkRef) matches(name string, mac net.HardwareAddr) bool {
	if r.Name != "" {
		return r.Name == name
	}
	return r.MAC != "" && strings.EqualFold(r.MAC, mac.String())
}

// ChooseLinks returns the links to configure: the --iface names when there
// are any; else the links the plan names (by MAC, or by name when the
// metadata gave no MAC); else every physical Ethernet link found under
// sysDir/class/net ("" is /sys) at the time of the call.
func ChooseLinks(ifaces []string, p Plan, sysDir string) ([]LinkRef, error) {
	var refs []LinkRef
	switch {
	case len(ifaces) > 0:
		for _, n := range ifaces {
			if r := (LinkRef{Name: n}); !slices.Contains(refs, r) {
				refs = append(refs, r)
			}
		}
	case len(p.Links) > 0:
		for _, lp := range p.Links {
			r := LinkRef{MAC: lp.MAC}
			if lp.MAC == "" {
				r.Name = lp.Name
			}
			if !slices.Contains(refs, r) {
				refs = append(refs, r)
			}
		}
	default:
		names, err := PhysicalLinks(sysDir)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			refs = append(refs, LinkRef{Name: n})
		}
	}
	return refs, nil
}

// PhysicalLinks lists the Ethernet links backed by a device: those with a
// "device" entry under sysDir/class/net/NAME (a virtio, PCI or platform
// NIC), of ARP type 1 (Ethernet), that are not a bridge or a bond. Loopback,
// veth, bridges, tunnels and the like have no device. Sorted by name.
func PhysicalLinks(sysDir string) ([]string, error) {
	if sysDir == "" {
		sysDir = "/sys"
	}
	dir := filepath.Join(sysDir, "class", "net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var names []string
	for _, e := range ents {
		base := filepath.Join(dir, e.Name())
		if !exists(filepath.Join(base, "device")) || exists(filepath.Join(base, "bridge")) || exists(filepath.Join(base, "bonding")) {
			continue
		}
		t, err := os.ReadFile(filepath.Join(base, "type"))
		if err != nil || strings.TrimSpace(string(t)) != "1" {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// WaitOptions tunes WaitLinks.
type WaitOptions struct {
	// Namespace is the network namespace h works in, for the link
	// subscription; nil is the current one.
	Namespace *netns.NsHandle
	// NoCarrierOK returns a link as soon as it is administratively up,
	// without waiting for its carrier (static addresses do not need one).
	NoCarrierOK bool

	subscribed func() // tests: called once the subscription is in place
}

// ErrLinkMissing is wrapped by WaitLinks's error for a link that never
// appeared, ErrNoCarrier for one that appeared but had no carrier.
var (
	ErrLinkMissing = errors.New("link did not appear")
	ErrNoCarrier   = errors.New("link has no carrier")
)

// WaitLinks brings lo up, then waits until every link in want exists and
// is up with a carrier, setting it up when it is not. It listens to
// netlink link updates (subscribed before the existing links are listed,
// so none is missed), never polls, and ends with ctx. It returns, in the
// order of want, the links found with their name and MAC filled in, and an
// error naming each link that did not appear or got no carrier in time (a
// link without carrier is still returned).
func WaitLinks(ctx context.Context, h *netlink.Handle, want []LinkRef, o WaitOptions) ([]LinkRef, error) {
	var errs []error
	if lo, err := h.LinkByName("lo"); err != nil {
		errs = append(errs, fmt.Errorf("find lo: %w", err))
	} else if lo.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(lo); err != nil {
			errs = append(errs, fmt.Errorf("set lo up: %w", err))
		}
	}
	if len(want) == 0 {
		return nil, errors.Join(errs...)
	}

	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	subErr := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		Namespace:    o.Namespace,
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case subErr <- err:
			default:
			}
		},
	})
	if err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("subscribe to link updates: %w", err))...)
	}
	defer func() {
		close(done)
		// Let the subscription's goroutine finish sending, and exit.
		go func() {
			for range updates {
			}
		}()
	}()
	if o.subscribed != nil {
		o.subscribed()
	}

	type state struct {
		ref     LinkRef
		index   int
		up      bool // administratively up
		carrier bool
		setUp   bool // LinkSetUp already tried
	}
	states := make([]state, len(want))
	for i, r := range want {
		states[i].ref = r
	}
	ready := func() bool {
		for _, s := range states {
			if s.index == 0 || !s.up || !(s.carrier || o.NoCarrierOK) {
				return false
			}
		}
		return true
	}
	// lastSubErr is reported only if the wait fails: a dump interrupted by
	// a change (ErrDumpInterrupted) is followed by that change's event.
	var lastSubErr error
wait:
	for !ready() {
		var u netlink.LinkUpdate
		var ok bool
		select {
		case u, ok = <-updates:
			if !ok {
				lastSubErr = errors.Join(lastSubErr, errors.New("subscription ended"))
				break wait
			}
		case err := <-subErr:
			lastSubErr = err
			continue
		case <-ctx.Done():
			break wait
		}
		a := u.Link.Attrs()
		for i := range states {
			s := &states[i]
			if s.index != 0 && s.index != a.Index {
				continue
			}
			if u.Header.Type == unix.RTM_DELLINK {
				if s.index == a.Index {
					*s = state{ref: s.ref}
				}
				continue
			}
			if !s.ref.matches(a.Name, a.HardwareAddr) || slices.ContainsFunc(states, func(o state) bool { return o.index == a.Index && o.ref != s.ref }) {
				continue
			}
			s.index = a.Index
			s.ref = LinkRef{Name: a.Name, MAC: strings.ToLower(a.HardwareAddr.String())}
			s.up = a.Flags&net.FlagUp != 0
			// IFF_LOWER_UP is the carrier itself. The operational state
			// lags: right after IFF_UP the kernel reports it UNKNOWN
			// until linkwatch runs, even with no carrier. Drivers that
			// do not track carrier leave it on.
			s.carrier = a.RawFlags&unix.IFF_LOWER_UP != 0
			if !s.up && !s.setUp {
				s.setUp = true
				if err := h.LinkSetUp(u.Link); err != nil {
					errs = append(errs, fmt.Errorf("set %s up: %w", a.Name, err))
				}
			}
		}
	}
	var found []LinkRef
	for i, s := range states {
		switch {
		case s.index == 0:
			errs = append(errs, fmt.Errorf("link %s: %w", want[i], ErrLinkMissing))
			continue
		case !s.up:
			errs = append(errs, fmt.Errorf("link %s: not up", s.ref.Name))
		case !s.carrier && !o.NoCarrierOK:
			errs = append(errs, fmt.Errorf("link %s: %w", s.ref.Name, ErrNoCarrier))
		}
		found = append(found, s.ref)
	}
	if len(errs) > 0 && lastSubErr != nil {
		errs = append(errs, fmt.Errorf("link updates: %w", lastSubErr))
	}
	return found, errors.Join(errs...)
}

// ForLinks fits a plan built from the metadata to the links found on the
// system (WaitLinks's result, with names and MACs): each plan link gets the
// kernel's name of its link, a found link the plan does not describe gets
// DHCP in ModeAuto and ModeDHCP, and a plan link not found is dropped with
// a warning.
func ForLinks(p Plan, found []LinkRef, mode Mode) Plan {
	out := Plan{DNS: p.DNS, Warnings: slices.Clone(p.Warnings)}
	used := make([]bool, len(p.Links))
	for _, f := range found {
		i := slices.IndexFunc(p.Links, func(lp LinkPlan) bool {
			if lp.MAC != "" {
				return strings.EqualFold(lp.MAC, f.MAC)
			}
			return lp.Name == f.Name
		})
		switch {
		case i >= 0 && !used[i]:
			used[i] = true
			lp := p.Links[i]
			lp.Name, lp.MAC = f.Name, f.MAC
			out.Links = append(out.Links, lp)
		case mode == ModeAuto || mode == ModeDHCP || mode == "":
			out.Links = append(out.Links, LinkPlan{Name: f.Name, MAC: f.MAC, Method: MethodDHCP})
		}
	}
	for i, lp := range p.Links {
		if !used[i] {
			out.Warnings = append(out.Warnings, fmt.Sprintf("link %s from %s: not among the links chosen: not configured", linkID(lp), lp.Source))
		}
	}
	return out
}
