package vm

import (
	"slices"
	"strings"
	"testing"
)

// TestModuleClosure resolves against the real Debian cloud kernel's tree:
// dependencies from .modinfo come first, each once; built-ins are left
// out; an unknown name is an error naming it.
func TestModuleClosure(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: needs the Debian cloud kernel")
	}
	k := FetchKernel(t)
	got, err := k.ModuleClosure("virtio_net", "virtio-blk", "af_packet")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, ModuleName(p))
	}
	pos := func(m string) int { return slices.Index(names, m) }
	for _, m := range []string{"virtio_net", "net_failover", "failover", "virtio", "virtio_ring", "virtio_blk"} {
		if pos(m) < 0 {
			t.Errorf("closure %v lacks %s", names, m)
		}
	}
	for _, before := range [][2]string{{"failover", "net_failover"}, {"net_failover", "virtio_net"}, {"virtio", "virtio_net"}, {"virtio_ring", "virtio_blk"}} {
		if pos(before[0]) > pos(before[1]) {
			t.Errorf("closure %v has %s after %s, which needs it", names, before[0], before[1])
		}
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("closure %v lists %s twice", names, n)
		}
		seen[n] = true
	}
	if pos("af_packet") >= 0 {
		t.Errorf("closure %v has af_packet, built into this kernel", names)
	}
	if _, err := k.ModuleClosure("does-not-exist"); err == nil || !strings.Contains(err.Error(), "does_not_exist") {
		t.Errorf("ModuleClosure(does-not-exist): err = %v, want one naming it", err)
	}
}
