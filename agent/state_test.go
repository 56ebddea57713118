package agent

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/netcfg"
)

func TestKeyLabels(t *testing.T) {
	in := "# a comment\n" +
		"ssh-ed25519 AAAAC3Nza alice@laptop\n" +
		"from=\"10.0.0.0/8\",no-pty ssh-rsa AAAAB3Nza bob at desk\n" +
		"ecdsa-sha2-nistp256 AAAAE2V\n" +
		"\n" +
		"garbage\n"
	want := []string{"ssh-ed25519 alice@laptop", "ssh-rsa bob at desk", "ecdsa-sha2-nistp256"}
	if diff := cmp.Diff(want, keyLabels([]byte(in))); diff != "" {
		t.Errorf("keyLabels mismatch (-want +got):\n%s", diff)
	}
}

func TestStatus(t *testing.T) {
	root := t.TempDir()
	started := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	st := &State{
		Version: "v1", Started: started, Finished: started.Add(1500 * time.Millisecond), ExitCode: 1,
		InstanceID: "129714139", Source: "/dev/vdb", User: "admin",
		Steps: []StepResult{
			{Name: "keys", Outcome: OK, Summary: "1 key installed", Changes: []string{"wrote /etc/ssh/authorized_keys.d/admin"}, Duration: time.Millisecond},
			{Name: "net", Outcome: Failed, Error: "dhcp eth0: no answer", Warnings: []string{"stack: goroutine 1", "bond0 not configured"}, Duration: 2 * time.Second},
		},
	}
	if err := writeState(root, st); err != nil {
		t.Fatal(err)
	}
	lease := &netcfg.Lease{
		Interface: "eth0", Address: netip.MustParsePrefix("10.0.2.15/24"), Server: netip.MustParseAddr("10.0.2.2"),
		Acquired: started, Duration: time.Hour, ACK: []byte{1},
	}
	if err := netcfg.SaveLease(root, lease); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "run/notos-agent/lease-eth1.json"), []byte("{"), 0o644)
	os.MkdirAll(filepath.Join(root, "etc/ssh/authorized_keys.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("web-1\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/ssh/authorized_keys.d/admin"), []byte("ssh-ed25519 AAAA alice@laptop\n"), 0o600)

	status := ReadStatus(root)
	var b strings.Builder
	status.WriteText(&b, started.Add(20*time.Minute))
	local := func(t time.Time) string { return t.Local().Format(time.DateTime) }
	want := "last run: " + local(started) + ", exit 1, took 1.5s (notos-agent v1)\n" +
		"instance: 129714139 from /dev/vdb\n" +
		"steps:\n" +
		"  keys: 1 key installed (1ms)\n" +
		"      changed: wrote /etc/ssh/authorized_keys.d/admin\n" +
		"  net: failed: dhcp eth0: no answer (2s)\n" +
		"      warning: bond0 not configured\n" +
		"lease eth0: 10.0.2.15/24 from 10.0.2.2, expires " + local(started.Add(time.Hour)) + " (in 40m0s)\n" +
		"lease: parse lease " + root + "/run/notos-agent/lease-eth1.json: unexpected end of JSON input\n" +
		"hostname: web-1\n" +
		"keys: 1 in /etc/ssh/authorized_keys.d/admin\n" +
		"  ssh-ed25519 alice@laptop\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("status text mismatch (-want +got):\n%s", diff)
	}

	b.Reset()
	status.WriteText(&b, started.Add(2*time.Hour))
	if !strings.Contains(b.String(), "expired "+local(started.Add(time.Hour))+" (1h0m0s ago)") {
		t.Errorf("expired lease not shown as such:\n%s", b.String())
	}
}

func TestStatusWithoutState(t *testing.T) {
	status := ReadStatus(t.TempDir())
	if status.State != nil || !strings.Contains(status.StateError, "run has not run since boot") {
		t.Errorf("ReadStatus of an empty root: %+v", status)
	}
	var b strings.Builder
	status.WriteText(&b, time.Now())
	want := "last run: unknown (no /run/notos-agent/state.json: run has not run since boot)\n" +
		"leases: none saved\nhostname: (none)\nkeys: 0 in /etc/ssh/authorized_keys.d/root\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("status text mismatch (-want +got):\n%s", diff)
	}
}
