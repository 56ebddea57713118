package netcfg

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

func testLease(t *testing.T) *Lease {
	t.Helper()
	p, err := ACKToPlan("eth0", testACK(t, mask(255, 255, 255, 0), dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1)))), testAcquired)
	if err != nil {
		t.Fatalf("ACKToPlan: %v", err)
	}
	return p.Links[0].Lease
}

func TestSaveLoadLease(t *testing.T) {
	root := t.TempDir()
	want := testLease(t)
	if err := SaveLease(root, want); err != nil {
		t.Fatalf("SaveLease: %v", err)
	}
	fi, err := os.Stat(filepath.Join(root, "run/notos-agent/lease-eth0.json"))
	if err != nil {
		t.Fatalf("lease file: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o644 {
		t.Errorf("lease file mode = %v, want 0644", got)
	}
	got, err := LoadLease(root, "eth0")
	if err != nil {
		t.Fatalf("LoadLease: %v", err)
	}
	if diff := cmp.Diff(want, got, ipOpts); diff != "" {
		t.Errorf("loaded lease (-want +got):\n%s", diff)
	}
	if err := RemoveLease(root, "eth0"); err != nil {
		t.Fatalf("RemoveLease: %v", err)
	}
	if _, err := LoadLease(root, "eth0"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadLease after RemoveLease: error %v, want fs.ErrNotExist", err)
	}
	if err := RemoveLease(root, "eth0"); err != nil {
		t.Errorf("RemoveLease of a missing lease: %v", err)
	}
}

func TestLeasePathRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "../etc", "a/b", "averyveryverylongname"} {
		if p, err := LeasePath("/r", name); err == nil {
			t.Errorf("LeasePath(%q) = %q, want an error", name, p)
		}
	}
}

func TestLeasePlanAt(t *testing.T) {
	l := testLease(t)
	tests := []struct {
		name      string
		at        time.Duration // after acquisition
		wantValid time.Duration
		wantErr   bool
	}{
		{"at once", 0, time.Hour + time.Second, false},
		{"after 20m", 20 * time.Minute, 40*time.Minute + time.Second, false},
		{"half a second left", time.Hour - 500*time.Millisecond, time.Second, false},
		{"expired", time.Hour, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := l.PlanAt(testAcquired.Add(tt.at))
			if (err != nil) != tt.wantErr {
				t.Fatalf("PlanAt error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			a := p.Links[0].Addrs[0]
			if a.Valid != tt.wantValid || a.Preferred != tt.wantValid {
				t.Errorf("lifetimes valid %s preferred %s, want %s", a.Valid, a.Preferred, tt.wantValid)
			}
		})
	}
}
