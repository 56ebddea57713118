package netcfg

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/notos-agent/notos-agent/internal/atomicfile"
)

// LeaseDir is where leases are saved, under the root directory.
const LeaseDir = "run/notos-agent"

// LeasePath is the file iface's lease is saved to under root.
func LeasePath(root, iface string) (string, error) {
	// A link name is at most 15 bytes and never holds '/' (the kernel's
	// dev_valid_name); anything else must not become a path.
	if iface == "" || iface == "." || iface == ".." || len(iface) > 15 || strings.ContainsAny(iface, "/\x00") {
		return "", fmt.Errorf("lease file for link %q: not a valid link name", iface)
	}
	return filepath.Join(root, LeaseDir, "lease-"+iface+".json"), nil
}

// SaveLease writes l to /run/notos-agent/lease-<iface>.json under root,
// atomically.
func SaveLease(root string, l *Lease) error {
	path, err := LeasePath(root, l.Interface)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lease of %s: %w", l.Interface, err)
	}
	_, err = atomicfile.Write(path, append(b, '\n'), atomicfile.Options{Perm: 0o644, UID: -1, GID: -1, DirPerm: 0o755})
	return err
}

// LoadLease reads iface's saved lease under root. A missing file is
// reported with an error wrapping fs.ErrNotExist.
func LoadLease(root, iface string) (*Lease, error) {
	path, err := LeasePath(root, iface)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read lease: %w", err)
	}
	var l Lease
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("parse lease %s: %w", path, err)
	}
	if l.Interface != iface {
		return nil, fmt.Errorf("lease %s is for link %q, not %q", path, l.Interface, iface)
	}
	return &l, nil
}

// RemoveLease deletes iface's saved lease; a missing file is not an error.
func RemoveLease(root, iface string) error {
	path, err := LeasePath(root, iface)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove lease: %w", err)
	}
	return nil
}

// Plan rebuilds the plan of a saved lease from its ACK, with the lifetimes
// of the whole lease.
func (l *Lease) Plan() (Plan, error) {
	ack, err := dhcpv4.FromBytes(l.ACK)
	if err != nil {
		return Plan{}, fmt.Errorf("lease of %s: saved ACK: %w", l.Interface, err)
	}
	return ACKToPlan(l.Interface, ack, l.Acquired)
}

// PlanAt rebuilds the plan of a saved lease as of now: the address
// lifetimes are what remains of the lease, so that applying it again does
// not extend the address past the lease's end. It fails when the lease has
// expired or its ACK does not parse.
func (l *Lease) PlanAt(now time.Time) (Plan, error) {
	p, err := l.Plan()
	if err != nil {
		return Plan{}, err
	}
	if l.Duration == infiniteLease {
		return p, nil
	}
	left := l.Acquired.Add(l.Duration).Sub(now)
	if left <= 0 {
		return Plan{}, fmt.Errorf("lease of %s on %s expired at %s", l.Address, l.Interface, l.Acquired.Add(l.Duration).Format(time.RFC3339))
	}
	for i := range p.Links[0].Addrs {
		a := &p.Links[0].Addrs[i]
		// The kernel counts lifetimes in whole seconds; round up so the
		// address never leaves before the lease does.
		a.Valid = left.Truncate(time.Second) + time.Second
		a.Preferred = a.Valid
	}
	return p, nil
}
