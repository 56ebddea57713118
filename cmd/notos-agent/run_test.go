package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/agent"
	"github.com/notos-agent/notos-agent/internal/netnstest"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     agent.Options
		wantCode int
		wantErr  string
	}{
		{
			name: "defaults leave the kernel command line its say",
			args: nil,
			want: agent.Options{Root: "/", DriveWait: agent.DefaultDriveWait, User: "root"},
		},
		{
			name: "every flag",
			args: []string{"--root", "/mnt", "--timeout", "30s", "--drive-wait", "2s", "--drive", "/dev/vdb", "--label", "CONFIG-2",
				"--modules", "virtio_net,virtio_blk", "--modules-dir", "/lib/modules/6.1", "--iface", "eth0", "--iface", "eth1,eth2", "--net", "dhcp", "--skip", "seed,userdata",
				"--userdata-wait", "5s", "--user", "admin", "--quiet", "--verbose"},
			want: agent.Options{Root: "/mnt", Timeout: 30e9, DriveWait: 2e9, Drive: "/dev/vdb", Label: "CONFIG-2",
				Modules: []string{"virtio_net", "virtio_blk"}, ModulesDir: "/lib/modules/6.1", Ifaces: []string{"eth0", "eth1", "eth2"}, Net: "dhcp",
				Skip: []string{"seed", "userdata"}, UserDataWait: 5e9, User: "admin", Quiet: true, Verbose: true},
		},
		{
			name: "an empty list is given",
			args: []string{"--skip", ""},
			want: agent.Options{Root: "/", DriveWait: agent.DefaultDriveWait, User: "root", Skip: []string{}},
		},
		{name: "bad mode", args: []string{"--net", "maybe"}, wantCode: 2, wantErr: `notos-agent run: --net="maybe": not one of auto, dhcp, static, off`},
		{name: "bad step", args: []string{"--skip", "keys,lunch"}, wantCode: 2, wantErr: `notos-agent run: --skip: "lunch": not a valid name`},
		{name: "bad link", args: []string{"--iface", "a/b"}, wantCode: 2, wantErr: `notos-agent run: --iface: "a/b": not a valid name`},
		{name: "argument", args: []string{"now"}, wantCode: 2, wantErr: `notos-agent run: unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			got, code, ok := runFlags(tt.args, &stdout, &stderr)
			if code != tt.wantCode || ok != (tt.wantCode == 0) {
				t.Fatalf("runFlags: code %d ok %v, want %d; stderr:\n%s", code, ok, tt.wantCode, stderr.String())
			}
			if tt.wantErr != "" {
				if first, _, _ := strings.Cut(stderr.String(), "\n"); first != tt.wantErr {
					t.Errorf("stderr starts %q, want %q", first, tt.wantErr)
				}
				return
			}
			got.Stderr, got.Version = nil, ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// runLayout copies the DigitalOcean drive layout of the seed, adds a
// user_data script carrying a sentinel, and makes the ISO the way
// OpenStack does (genisoimage -J -r -V config-2).
func runLayout(t *testing.T) (iso string) {
	t.Helper()
	tools := testenv.RequireCommands(t, "genisoimage")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.CopyFS(tree, os.DirFS("../../configdrive/testdata/do-layout")); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"latest", "2015-10-16", "2012-08-10"} {
		p := filepath.Join(tree, "openstack", v, "user_data")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n# "+userDataSentinel+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso = filepath.Join(dir, "config-2.iso")
	if out, err := exec.Command(tools["genisoimage"], "-quiet", "-J", "-r", "-V", "config-2", "-o", iso, tree).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	return iso
}

const (
	userDataSentinel  = "SENTINEL-USER-DATA-c0ffee"
	adminPassSentinel = "d624c3a16791b2997de776861b47de45" // the seed's admin_pass
)

// runBinary runs the real binary in private UTS and mount namespaces (the
// machine's host name and mounts cannot change whatever it does; unshare
// makes the mounts private, so nothing propagates back) and returns its
// exit status, stderr and the state.json it wrote.
func runBinary(t *testing.T, bin, root string, args ...string) (int, string, agent.State) {
	t.Helper()
	return runBinaryWith(t, exec.Command, bin, root, args...)
}

// runBinaryWith is runBinary with the command made by command (to run it
// in a network namespace).
func runBinaryWith(t *testing.T, command func(string, ...string) *exec.Cmd, bin, root string, args ...string) (int, string, agent.State) {
	t.Helper()
	unshare := testenv.RequireCommands(t, "unshare")["unshare"]
	cmd := command(unshare, append([]string{"--uts", "--mount", "--propagation", "private", "--", bin}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", bin, err)
	}
	raw, err := os.ReadFile(filepath.Join(root, agent.StatePath))
	if err != nil {
		t.Fatalf("state.json after %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	for _, secret := range []string{userDataSentinel, adminPassSentinel} {
		if strings.Contains(string(raw), secret) || strings.Contains(stderr.String(), secret) {
			t.Errorf("a secret (%s) reached state.json or stderr", secret)
		}
	}
	var st agent.State
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	return code, stderr.String(), st
}

// Tier 1 (root): the real binary against the DigitalOcean layout, twice.
func TestRunBinaryOnDrive(t *testing.T) {
	netnstest.Tier1(t)
	bin := testenv.AgentBinary(t)
	iso := runLayout(t)
	root := t.TempDir()
	hostBefore, _ := os.Hostname()

	args := []string{"run", "--root", root, "--drive", iso, "--net", "off", "--skip", "modules"}
	code, stderr, st := runBinary(t, bin, root, args...)
	if code != 0 {
		t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	outcomes := map[string]agent.Outcome{}
	for _, s := range st.Steps {
		outcomes[s.Name] = s.Outcome
	}
	want := map[string]agent.Outcome{
		"mounts": agent.Skipped, "cmdline": agent.Skipped, "modules": agent.Skipped, "drive": agent.OK, "links": agent.Skipped,
		"seed": agent.Skipped, "keys": agent.OK, "hostname": agent.OK, "net": agent.Skipped, "userdata": agent.OK,
	}
	if diff := cmp.Diff(want, outcomes); diff != "" {
		t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
	}
	if st.InstanceID != "129714139" || st.Source != iso {
		t.Errorf("state.json: instance %q, source %q", st.InstanceID, st.Source)
	}
	keys, _ := os.ReadFile(filepath.Join(root, "etc/ssh/authorized_keys.d/root"))
	if n := strings.Count(string(keys), "\n"); n != 2 || !strings.Contains(string(keys), "alice@laptop") || !strings.Contains(string(keys), "bob@workstation") {
		t.Errorf("keys file:\n%s", keys)
	}
	host, _ := os.ReadFile(filepath.Join(root, "etc/hostname"))
	if string(host) != "not-os-config-2.qcow2.s-1vcpu-1gb-ams3-01\n" {
		t.Errorf("/etc/hostname = %q", host)
	}
	if fi, err := os.Stat(filepath.Join(root, agent.UserDataPath)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("user-data: %v, %v; want mode 0600", fi, err)
	}

	code, stderr, st = runBinary(t, bin, root, args...)
	if code != 0 {
		t.Errorf("rerun exit %d; stderr:\n%s", code, stderr)
	}
	for _, s := range st.Steps {
		if len(s.Changes) > 0 {
			t.Errorf("rerun: %s changed %v", s.Name, s.Changes)
		}
	}
	if !strings.Contains(stderr, "; nothing changed (") {
		t.Errorf("rerun summary does not say nothing changed:\n%s", stderr)
	}
	if h, _ := os.Hostname(); h != hostBefore {
		t.Errorf("the machine's host name changed from %q to %q", hostBefore, h)
	}

	// status reads it back.
	var out, serr strings.Builder
	if code := dispatch([]string{"notos-agent", "status", "--root", root}, &out, &serr); code != 0 {
		t.Errorf("status exit %d: %s", code, serr.String())
	}
	for _, line := range []string{"instance: 129714139 from " + iso, "hostname: not-os-config-2.qcow2.s-1vcpu-1gb-ams3-01", "keys: 2 in /etc/ssh/authorized_keys.d/root"} {
		if !strings.Contains(out.String(), line+"\n") {
			t.Errorf("status lacks %q:\n%s", line, out.String())
		}
	}
	out.Reset()
	if code := dispatch([]string{"notos-agent", "status", "--root", root, "--json"}, &out, &serr); code != 0 {
		t.Errorf("status --json exit %d: %s", code, serr.String())
	}
	var js agent.Status
	if err := json.Unmarshal([]byte(out.String()), &js); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out.String())
	}
	if js.State == nil || len(js.State.Steps) != len(agent.StepNames) || js.Hostname != "not-os-config-2.qcow2.s-1vcpu-1gb-ams3-01" ||
		len(js.Keys) != 2 || js.KeysFile != "/etc/ssh/authorized_keys.d/root" {
		t.Errorf("status --json:\n%s", out.String())
	}
	for _, secret := range []string{userDataSentinel, adminPassSentinel} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("status --json shows a secret")
		}
	}
}

// Tier 1 (root): run in a private network namespace against a real
// dnsmasq: keys, host name and the network in one go; the lease saved for
// the keeper; a rerun leaves exactly one address and route and changes
// nothing.
func TestRunBinaryDHCPInNetns(t *testing.T) {
	ns := netnstest.New(t)
	netnstest.StartDnsmasq(t, ns, "--dhcp-range=10.77.0.10,10.77.0.50,255.255.255.0,2m",
		"--dhcp-option=3,10.77.0.1", "--dhcp-option=6,10.77.0.53")
	bin := testenv.AgentBinary(t)
	iso := runLayout(t)
	root := t.TempDir()
	args := []string{"run", "--root", root, "--drive", iso, "--net", "dhcp", "--iface", netnstest.ClientLink,
		"--skip", "modules", "--timeout", "30s", "--verbose"}

	check := func(run string) agent.State {
		t.Helper()
		code, stderr, st := runBinaryWith(t, ns.Exec, bin, root, args...)
		if code != 0 {
			t.Errorf("%s: exit %d; stderr:\n%s", run, code, stderr)
		}
		var v4 []string
		for _, la := range ns.Addrs(t, "dev", netnstest.ClientLink) {
			for _, a := range la.Addrs {
				if a.Family == "inet" {
					v4 = append(v4, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
				}
			}
		}
		if len(v4) != 1 || !strings.HasPrefix(v4[0], "10.77.0.") || !strings.HasSuffix(v4[0], "/24") {
			t.Errorf("%s: IPv4 addresses on %s: %v, want one 10.77.0.x/24", run, netnstest.ClientLink, v4)
		}
		var defaults []string
		for _, r := range ns.Routes(t) {
			if r.Dst == "default" {
				defaults = append(defaults, r.Gateway+" dev "+r.Dev)
			}
		}
		if diff := cmp.Diff([]string{"10.77.0.1 dev " + netnstest.ClientLink}, defaults); diff != "" {
			t.Errorf("%s: default routes mismatch (-want +got):\n%s", run, diff)
		}
		return st
	}

	st := check("first run")
	var netStep agent.StepResult
	for _, s := range st.Steps {
		if s.Name == "net" {
			netStep = s
		}
	}
	if netStep.Outcome != agent.OK || !slices.ContainsFunc(netStep.Changes, func(c string) bool {
		return strings.HasPrefix(c, "added "+netnstest.ClientLink+": address 10.77.0.")
	}) {
		t.Errorf("net step: %+v", netStep)
	}
	if _, err := os.Stat(filepath.Join(root, "run/notos-agent/lease-"+netnstest.ClientLink+".json")); err != nil {
		t.Errorf("lease not saved for the keeper: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/resolv.conf")); !strings.Contains(string(b), "nameserver 10.77.0.53") {
		t.Errorf("resolv.conf:\n%s", b)
	}

	st = check("rerun")
	for _, s := range st.Steps {
		if len(s.Changes) > 0 {
			t.Errorf("rerun: %s changed %v", s.Name, s.Changes)
		}
	}
}

// Tier 1 (root): started as .../etc/runit/1, the binary runs and then
// execs 1.local, whose exit status becomes the process's.
func TestStageOneExecsLocal(t *testing.T) {
	netnstest.Tier1(t)
	bin := testenv.AgentBinary(t)
	iso := runLayout(t)
	root := t.TempDir()
	runit := filepath.Join(root, "etc/runit")
	if err := os.MkdirAll(runit, 0o755); err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(runit, "1")
	if err := os.Symlink(bin, one); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(root, "local-ran")
	local := filepath.Join(runit, "1.local")
	os.WriteFile(local, []byte("#!/bin/sh\ntest -f "+root+agent.StatePath+" && echo ran > "+marker+"\nexit 3\n"), 0o755)

	code, stderr, st := runBinary(t, one, root, "--root", root, "--drive", iso, "--net", "off", "--skip", "modules")
	if code != 3 {
		t.Errorf("exit %d, want 3 (1.local's); stderr:\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(marker); string(b) != "ran\n" {
		t.Errorf("1.local did not run after state.json was written")
	}
	if st.ExitCode != 0 {
		t.Errorf("run's own exit code %d", st.ExitCode)
	}

	// Without an executable 1.local, stage 1 ends with run's status.
	os.Chmod(local, 0o644)
	os.Remove(marker)
	code, stderr, _ = runBinary(t, one, root, "--root", root, "--drive", iso, "--net", "off", "--skip", "modules")
	if code != 0 {
		t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a non-executable 1.local ran")
	}
}

// Tier 1 (root): no link to configure (no --iface, no metadata, no
// physical Ethernet link) is the net step's failure, not a silent success;
// the steps around it still run.
func TestRunBinaryNoLink(t *testing.T) {
	ns := netnstest.New(t)
	bin := testenv.AgentBinary(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys/class/net"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, stderr, st := runBinaryWith(t, ns.Exec, bin, root, "run", "--root", root, "--drive", filepath.Join(root, "absent.iso"),
		"--skip", "modules", "--timeout", "20s")
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	want := map[string]agent.Outcome{
		"mounts": agent.Skipped, "cmdline": agent.Skipped, "modules": agent.Skipped, "drive": agent.Failed, "links": agent.OK,
		"seed": agent.Skipped, "keys": agent.Skipped, "hostname": agent.Skipped, "net": agent.Failed, "userdata": agent.Skipped,
	}
	got := map[string]agent.Outcome{}
	for _, s := range st.Steps {
		got[s.Name] = s.Outcome
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(stderr, "notos-agent: net: failed: no link to configure") {
		t.Errorf("stderr:\n%s", stderr)
	}
}
