// Package e2e is issue 6's end-to-end suite (`make e2e`): it boots the
// not-os-like guest of internal/guest under QEMU (TCG) — runit as PID 1,
// `notos-agent run` in /etc/runit/1, sshd as not-os configures it in
// stage 2, vda an ext4 disk labelled rootfs, vdb the config-2 drive,
// QEMU's user network — and proves each scenario the only way that counts
// for a provisioning agent: by logging in with the host's OpenSSH client
// through a forwarded port.
package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/agent"
	"github.com/notos-agent/notos-agent/internal/guest"
	"github.com/notos-agent/notos-agent/internal/testenv"
	"github.com/notos-agent/notos-agent/internal/vm"
	"github.com/notos-agent/notos-agent/netcfg"
)

const (
	// bootTimeout bounds one scenario: a boot takes seconds when the
	// cores are free, much longer under TCG on a busy host.
	bootTimeout = 4 * time.Minute
	// runTimeout is the --timeout stage 1 gives `notos-agent run`.
	runTimeout = 30 * time.Second
	// hostname is what the drives made here name the guest.
	hostname = "droplet-e2e"
)

// keys are the suite's throwaway ed25519 keys: one baked into the image,
// two on the drives.
type keys struct {
	baked, drive1, drive2 string // private key paths (public: PATH.pub)
}

func (k keys) pub(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestE2E runs every scenario of issue 6 one after the other (2 cores:
// one QEMU at a time), each on its own boot except where one boot proves
// two things, and logs each boot-to-SSH time and the whole duration.
func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: boots a kernel under QEMU seven times")
	}
	// `go test ./...` (make test) compiles this suite; make e2e runs it.
	if os.Getenv("NOTOS_E2E") != "1" {
		t.Skip("skipped: the end-to-end suite runs under make e2e (NOTOS_E2E=1)")
	}
	testenv.RequireCommands(t, "qemu-system-x86_64", "busybox", "runit", "runsvdir", "depmod", "mke2fs",
		"genisoimage", "ssh", "ssh-keygen", "sshd", "xz")
	start := time.Now()
	agentBin := testenv.AgentBinary(t)
	k := keys{
		baked:  guest.KeyFiles(t, "baked@image"),
		drive1: guest.KeyFiles(t, "first@drive"),
		drive2: guest.KeyFiles(t, "second@drive"),
	}
	e := &env{agent: agentBin, keys: k}

	t.Run("1-digitalocean-mkdrive", e.digitalOcean)
	t.Run("2-genisoimage-rock-ridge-joliet", func(t *testing.T) {
		e.otherDrive(t, vm.ISOImage(t, e.tree(t), "config-2", "-J", "-r"), "iso9660", "")
	})
	t.Run("2-genisoimage-joliet-only", func(t *testing.T) {
		e.otherDrive(t, vm.ISOImage(t, e.tree(t), "config-2", "-J"), "iso9660", "")
	})
	t.Run("2-vfat-CONFIG-2", func(t *testing.T) {
		e.otherDrive(t, e.mkdrive(t, "--format", "vfat"), "vfat", "")
	})
	t.Run("3-modules-ko-xz", func(t *testing.T) {
		e.otherDrive(t, e.mkdrive(t, "--digitalocean"), "iso9660", vm.XZ)
	})
	t.Run("4-no-drive-and-7-lease-renewal", e.noDriveRenewal)
	t.Run("5-corrupt-meta-data", e.corrupt)
	t.Run("6-static", e.static)
	t.Logf("whole e2e suite: %.1fs", time.Since(start).Seconds())
}

type env struct {
	agent string
	keys  keys
}

// options are the guest every scenario boots: not-os's sshd with the
// baked key, SSH forwarded, the lease keeper in stage 2.
func (e *env) options(t *testing.T) guest.Options {
	return guest.Options{
		Agent:          e.agent,
		AuthorizedKeys: e.keys.pub(t, e.keys.baked),
		RunArgs:        []string{"--timeout", runTimeout.String()},
		SSHD:           true,
		ForwardSSH:     true,
		NetKeeper:      true,
	}
}

// keysFile is an authorized_keys file with both drive keys.
func (e *env) keysFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "drive-keys.pub")
	if err := os.WriteFile(p, []byte(e.keys.pub(t, e.keys.drive1)+e.keys.pub(t, e.keys.drive2)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// mkdrive runs `notos-agent mkdrive` with the two drive keys and the
// suite's hostname, plus args, and returns the image.
func (e *env) mkdrive(t *testing.T, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "config-2.img")
	args = append([]string{"mkdrive", "-o", out, "--key", e.keysFile(t), "--hostname", hostname}, args...)
	if b, err := exec.Command(e.agent, args...).CombinedOutput(); err != nil {
		t.Fatalf("notos-agent %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// tree is a DigitalOcean drive as files, for genisoimage: the layout
// mkdrive --digitalocean writes, written independently of mkdrive so that
// these scenarios do not depend on it.
func (e *env) tree(t *testing.T) string {
	t.Helper()
	md, err := json.MarshalIndent(map[string]any{
		"uuid":              "424242",
		"hostname":          hostname,
		"name":              hostname,
		"availability_zone": "e2e",
		"public_keys": map[string]string{
			"0": strings.TrimSpace(e.keys.pub(t, e.keys.drive1)),
			"1": strings.TrimSpace(e.keys.pub(t, e.keys.drive2)),
		},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"digitalocean_meta_data.json": `{"droplet_id": 424242, "hostname": "` + hostname + `", "public_keys": []}`,
	}
	for _, v := range []string{"2012-08-10", "2015-10-16", "latest"} {
		files["openstack/"+v+"/meta_data.json"] = string(md)
		files["openstack/"+v+"/network_data.json"] = `{"links": [], "networks": [], "services": []}`
		files["openstack/"+v+"/vendor_data.json"] = `{}`
		files["openstack/"+v+"/user_data"] = ""
	}
	return vm.WriteTree(t, t.TempDir(), files)
}

// machine is a booted guest and the deadline of its scenario.
type machine struct {
	*guest.Machine
	ctx context.Context
	rep *guest.Report
}

// boot boots the guest, waits for its stage-2 report and logs the agent's
// console lines. QEMU is killed when the subtest ends.
func boot(t *testing.T, o guest.Options) *machine {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	t.Cleanup(cancel)
	m := guest.Boot(ctx, t, o)
	t.Cleanup(m.Kill)
	rep, err := m.WaitReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stage 2 reached %.2fs after QEMU started; run exited %s", rep.Stage2.Seconds(), rep.RunExit)
	if out := agentLines.FindAllString(rep.Console, -1); len(out) > 0 {
		t.Logf("agent's lines on the console:\n%s", strings.Join(out, "\n"))
	}
	return &machine{Machine: m, ctx: ctx, rep: rep}
}

var agentLines = regexp.MustCompile(`(?m)^notos-agent: .*$`)

// ssh runs remote in the guest as root with the private key, once.
func (m *machine) ssh(key, remote string) (string, error) {
	out, err := vm.SSHCommand(m.ctx, m.HostPort(22), key, remote).CombinedOutput()
	return string(out), err
}

// login retries `ssh ... true` with key until it succeeds or the
// scenario's deadline passes, and logs the boot-to-SSH time: from QEMU's
// start to the first successful login. A refused key ends it at once.
func (m *machine) login(t *testing.T, key string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		out, err := m.ssh(key, "true")
		if err == nil {
			t.Logf("boot to SSH: %.2fs after QEMU started (login %d)", time.Since(m.Started).Seconds(), attempt)
			return
		}
		if strings.Contains(out, "Permission denied") {
			t.Fatalf("ssh with %s refused: %s", key, out)
		}
		if m.ctx.Err() != nil {
			t.Fatalf("no SSH login within the scenario's deadline; last try: %v: %s", err, out)
		}
		// A retry pace, not a wait for an event: sshd starting behind
		// QEMU's forwarded port has no signal the host can see.
		select {
		case <-m.ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// run runs remote over SSH and fails the test when it fails.
func (m *machine) run(t *testing.T, key, remote string) string {
	t.Helper()
	out, err := m.ssh(key, remote)
	if err != nil {
		t.Fatalf("ssh %q: %v\n%s", remote, err, out)
	}
	return out
}

// refused asserts that sshd turns the key away.
func (m *machine) refused(t *testing.T, key, what string) {
	t.Helper()
	out, err := m.ssh(key, "true")
	if err == nil || !strings.Contains(out, "Permission denied (publickey)") {
		t.Errorf("ssh with %s: err %v, output %q; want Permission denied (publickey)", what, err, out)
	}
}

// status is `notos-agent status --json` run over SSH.
func (m *machine) status(t *testing.T, key string) *agent.Status {
	t.Helper()
	t.Logf("notos-agent status:\n%s", m.run(t, key, "notos-agent status"))
	var st agent.Status
	if err := json.Unmarshal([]byte(m.run(t, key, "notos-agent status --json")), &st); err != nil {
		t.Fatalf("notos-agent status --json: %v", err)
	}
	if st.State == nil {
		t.Fatalf("notos-agent status --json: no state: %s", st.StateError)
	}
	return &st
}

// checkSteps compares each step's outcome with want (ok when not listed).
func checkSteps(t *testing.T, st *agent.State, want map[string]agent.Outcome) {
	t.Helper()
	wantAll := map[string]agent.Outcome{}
	for _, n := range agent.StepNames {
		wantAll[n] = agent.OK
		if o, ok := want[n]; ok {
			wantAll[n] = o
		}
	}
	got := map[string]agent.Outcome{}
	for _, s := range st.Steps {
		got[s.Name] = s.Outcome
	}
	if diff := cmp.Diff(wantAll, got); diff != "" {
		t.Errorf("step outcomes in state.json (-want +got):\n%s", diff)
	}
}

func step(st *agent.State, name string) agent.StepResult {
	for _, s := range st.Steps {
		if s.Name == name {
			return s
		}
	}
	return agent.StepResult{}
}

// checkIdentity asserts `hostname; ip -4 addr` in the guest: the name
// wanted and QEMU's user-network address on eth0.
func (m *machine) checkIdentity(t *testing.T, key, wantHost string) {
	t.Helper()
	out := m.run(t, key, "hostname; ip -4 addr")
	t.Logf("hostname; ip -4 addr:\n%s", out)
	host, addr, _ := strings.Cut(out, "\n")
	if wantHost != "" && host != wantHost {
		t.Errorf("hostname = %q, want %q", host, wantHost)
	}
	if !regexp.MustCompile(`inet 10\.0\.2\.15/24 .*eth0`).MatchString(addr) {
		t.Errorf("ip -4 addr has no 10.0.2.15/24 on eth0")
	}
}

// withoutMetadata asserts a boot that had no usable drive: the baked key
// logs in, DHCP gave the address, the drive step failed (run exited 1)
// and the steps that need metadata left the system alone.
func (m *machine) withoutMetadata(t *testing.T, baked string) {
	t.Helper()
	m.login(t, baked)
	m.checkIdentity(t, baked, "")
	st := m.status(t, baked)
	checkSteps(t, st.State, map[string]agent.Outcome{
		"drive": agent.Failed, "seed": agent.Skipped, "keys": agent.Skipped,
		"hostname": agent.Skipped, "userdata": agent.Skipped,
	})
	if st.State.ExitCode != 1 {
		t.Errorf("state.json exit_code = %d, want 1 (the drive step failed)", st.State.ExitCode)
	}
	if got := step(st.State, "net").Facts["lease_eth0"]; got != "10.0.2.15/24" {
		t.Errorf("net step lease_eth0 = %q, want 10.0.2.15/24 (DHCP)", got)
	}
}

// userData is a user_data script: each run appends a line to a file, so
// the test can count how often it ran.
const userData = "#!/bin/sh\necho ran >> /var/lib/e2e-user-data-runs\n"

// 1. A DigitalOcean drive made by mkdrive with two keys.
func (e *env) digitalOcean(t *testing.T) {
	ud := filepath.Join(t.TempDir(), "user_data")
	if err := os.WriteFile(ud, []byte(userData), 0o644); err != nil {
		t.Fatal(err)
	}
	o := e.options(t)
	o.Drive = e.mkdrive(t, "--digitalocean", "--user-data", ud)
	m := boot(t, o)
	m.login(t, e.keys.drive1)
	m.run(t, e.keys.drive2, "true")
	m.refused(t, e.keys.baked, "the baked key (replaced by the drive's)")
	m.checkIdentity(t, e.keys.drive1, hostname)

	out := m.run(t, e.keys.drive1, "readlink /proc/1/exe; sv status /etc/service/*; cat /var/lib/e2e-user-data-runs")
	if !regexp.MustCompile(`^/sbin/runit\nrun: /etc/service/notos-net: \(pid \d+\).*\nrun: /etc/service/sshd: \(pid \d+\).*\nran\n$`).MatchString(out) {
		t.Errorf("PID 1, services, user_data runs:\n%s\nwant /sbin/runit, notos-net and sshd running, user_data run once", out)
	}

	// Every step ok; the seed step has nothing to do (DigitalOcean
	// sends no random_seed).
	st := m.status(t, e.keys.drive1)
	checkSteps(t, st.State, map[string]agent.Outcome{"seed": agent.Skipped})
	if st.State.ExitCode != 0 {
		t.Errorf("state.json exit_code = %d, want 0", st.State.ExitCode)
	}
	if len(st.Keys) != 2 || st.Hostname != hostname || st.KernelHostname != hostname || len(st.Leases) != 1 {
		t.Errorf("status: keys %q, hostname %q (kernel %q), %d leases; want the drive's 2 keys, %s, one lease",
			st.Keys, st.Hostname, st.KernelHostname, len(st.Leases), hostname)
	}

	// A rerun from a shell is safe and changes nothing.
	rerun := "notos-agent run --modules " + strings.Join(guest.DefaultModules, ",") + " --timeout " + runTimeout.String() + "; echo exit=$?"
	out = m.run(t, e.keys.drive1, rerun)
	t.Logf("rerun over SSH:\n%s", out)
	if !strings.HasSuffix(out, "exit=0\n") {
		t.Errorf("rerun of notos-agent run did not exit 0")
	}
	if !regexp.MustCompile(`(?m)^notos-agent: done: .*; nothing changed `).MatchString(out) {
		t.Errorf("rerun's summary does not say nothing changed")
	}
	again := m.status(t, e.keys.drive1)
	checkSteps(t, again.State, map[string]agent.Outcome{"seed": agent.Skipped})
	if !again.State.Started.After(st.State.Started) {
		t.Errorf("state.json not rewritten by the rerun (started %s, before %s)", again.State.Started, st.State.Started)
	}
	for _, s := range again.State.Steps {
		if len(s.Changes) > 0 {
			t.Errorf("rerun: step %s changed %q", s.Name, s.Changes)
		}
	}
	if diff := cmp.Diff(st.Keys, again.Keys); diff != "" {
		t.Errorf("keys after the rerun (-before +after):\n%s", diff)
	}
	if out := m.run(t, e.keys.drive1, "cat /var/lib/e2e-user-data-runs; ip -4 addr show dev eth0 | grep -c inet"); out != "ran\n1\n" {
		t.Errorf("after the rerun: user_data runs and eth0 addresses = %q, want one run and one address", out)
	}
}

// 2 and 3. Another drive (or module compression): the drive, read as
// file system fstype, gave its keys and hostname; every step that applies
// ok.
func (e *env) otherDrive(t *testing.T, drive, fstype string, c vm.Compression) {
	o := e.options(t)
	o.Drive = drive
	o.Compression = c
	m := boot(t, o)
	m.login(t, e.keys.drive1)
	m.run(t, e.keys.drive2, "true")
	m.refused(t, e.keys.baked, "the baked key (replaced by the drive's)")
	m.checkIdentity(t, e.keys.drive1, hostname)
	st := m.status(t, e.keys.drive1)
	checkSteps(t, st.State, map[string]agent.Outcome{"seed": agent.Skipped, "userdata": agent.Skipped})
	summary := step(st.State, "drive").Summary
	t.Logf("drive step: %s", summary)
	if !strings.Contains(summary, " on /dev/vdb ("+fstype+",") {
		t.Errorf("drive step %q, want the drive read from /dev/vdb as %s", summary, fstype)
	}
	if c == "" {
		return
	}
	// Every module file in the guest is compressed, and every module
	// stage 1 asked for is in the kernel: loaded, or built in (af_packet
	// in Debian's cloud kernel).
	check := "find /lib/modules -name '*.ko*' | sed 's/.*\\.ko/.ko/' | sort -u; for m in " +
		strings.Join(guest.DefaultModules, " ") + "; do if grep -q \"^$m \" /proc/modules; then echo $m loaded; " +
		"elif grep -q \"/$m.ko\\$\" /lib/modules/*/modules.builtin; then echo $m built-in; fi; done"
	out := m.run(t, e.keys.drive1, check)
	want := ".ko." + string(c) + "\n"
	for _, name := range guest.DefaultModules {
		if name == "af_packet" {
			want += name + " built-in\n"
		} else {
			want += name + " loaded\n"
		}
	}
	if out != want {
		t.Errorf("module suffixes and loaded modules:\n%s\nwant:\n%s", out, want)
	}
	t.Logf("modules step: %s", step(st.State, "modules").Summary)
}

// 4 and 7. No drive: the baked key logs in, DHCP gave the address. The
// lease keeper then renews that lease: QEMU's DHCP server (slirp) leases
// for 24 h (a constant, no option changes it), so stage 1 moves the
// saved lease's acquired time back until T1 falls 20 s after stage 1.
// The keeper takes the lease over, and at T1 renews it by unicast to
// 10.0.2.2; slirp answers the DHCPREQUEST with an ACK.
func (e *env) noDriveRenewal(t *testing.T) {
	o := e.options(t)
	o.Stage1 = `lease=/run/notos-agent/lease-eth0.json
t1=$(sed -n 's/.*"t1": *\([0-9]*\).*/\1/p' $lease)
if [ -n "$t1" ]; then
	acquired=$(( $(date +%s) - t1 / 1000000000 + 20 ))
	sed -i "s/\"acquired\": *\"[^\"]*\"/\"acquired\": \"$(date -u -d @$acquired +%Y-%m-%dT%H:%M:%SZ)\"/" $lease
	vmtest t1_at "$(( acquired + t1 / 1000000000 ))"
fi
vmtest_run saved_lease cat $lease
`
	m := boot(t, o)
	m.withoutMetadata(t, e.keys.baked)

	t1, err := strconv.ParseInt(m.rep.Results.Values["t1_at"], 10, 64)
	if err != nil {
		t.Fatalf("stage 1 did not move the saved lease's T1 (VMTEST t1_at=%q):\n%s", m.rep.Results.Values["t1_at"],
			strings.Join(m.rep.Results.Blocks["saved_lease"], "\n"))
	}
	for _, re := range []string{
		`^notos-agent: net: dhcp eth0: took over lease of 10\.0\.2\.15/24 from 10\.0\.2\.2 `,
		`^notos-agent: net: dhcp eth0: RENEWING: asking 10\.0\.2\.2 to extend 10\.0\.2\.15/24`,
		`^notos-agent: net: dhcp eth0: bound to 10\.0\.2\.15/24 from 10\.0\.2\.2 for 24h0m0s`,
	} {
		got, err := m.Wait(m.ctx, regexp.MustCompile(re+".*"))
		if err != nil {
			t.Fatalf("keeper: %v", err)
		}
		t.Logf("keeper: %s", got[0])
	}
	// After T1, on the guest's clock: the address is still there, the
	// saved lease was acquired anew, and SSH still works over it.
	out := m.run(t, e.keys.baked, "date +%s; ip -4 addr show dev eth0 | grep inet; cat /run/notos-agent/lease-eth0.json")
	t.Logf("after the renewal:\n%s", out)
	now, rest, _ := strings.Cut(out, "\n")
	inet, leaseJSON, _ := strings.Cut(rest, "\n")
	if n, err := strconv.ParseInt(now, 10, 64); err != nil || n < t1 {
		t.Errorf("guest clock %q, want past T1 %d", now, t1)
	}
	if !strings.Contains(inet, "inet 10.0.2.15/24") {
		t.Errorf("eth0 after the renewal: %q, want 10.0.2.15/24", inet)
	}
	var l netcfg.Lease
	if err := json.Unmarshal([]byte(leaseJSON), &l); err != nil {
		t.Fatalf("lease file after the renewal: %v", err)
	}
	// The keeper sends its REQUEST at T1 and dates the new lease from it.
	if l.Acquired.Unix() < t1 || l.Address.String() != "10.0.2.15/24" {
		t.Errorf("lease after the renewal: %s acquired %s; want 10.0.2.15/24 acquired at T1 (%s) or later",
			l.Address, l.Acquired, time.Unix(t1, 0).UTC())
	}
}

// 5. A corrupt meta_data.json: like no drive, and the console names the
// file.
func (e *env) corrupt(t *testing.T) {
	dir := vm.WriteTree(t, t.TempDir(), map[string]string{
		"openstack/latest/meta_data.json":    `{"uuid": "e2e-corrupt", "public_keys": {"0": "ssh-ed25519 AAAA`,
		"openstack/latest/network_data.json": `{"links": [], "networks": [], "services": []}`,
	})
	o := e.options(t)
	o.Drive = vm.ISOImage(t, dir, "config-2", "-J", "-r")
	m := boot(t, o)
	re := regexp.MustCompile(`(?m)^notos-agent: drive: failed: .*openstack/latest/meta_data\.json.*$`)
	if line := re.FindString(m.rep.Console); line == "" {
		t.Errorf("no console line matching %s", re)
	} else {
		t.Logf("console: %s", line)
	}
	m.withoutMetadata(t, e.keys.baked)
}

// staticNetworkData describes QEMU's user network as OpenStack would.
const staticNetworkData = `{
  "links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56", "mtu": 1500}],
  "networks": [{
    "id": "network0", "type": "ipv4", "link": "tap0", "network_id": "e2e",
    "ip_address": "10.0.2.15", "netmask": "255.255.255.0",
    "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}]
  }],
  "services": [{"type": "dns", "address": "10.0.2.3"}]
}`

// 6. --net static from network_data.json: SSH works, and no DHCP
// happened: the net step says static, it recorded no lease, no lease file
// exists, and the keeper, finding none to keep, is left out.
func (e *env) static(t *testing.T) {
	nd := filepath.Join(t.TempDir(), "network_data.json")
	if err := os.WriteFile(nd, []byte(staticNetworkData), 0o644); err != nil {
		t.Fatal(err)
	}
	o := e.options(t)
	o.NetKeeper = false
	o.Drive = e.mkdrive(t, "--network-data", nd)
	o.RunArgs = append(o.RunArgs, "--net", "static")
	m := boot(t, o)
	m.login(t, e.keys.drive1)
	m.checkIdentity(t, e.keys.drive1, hostname)
	out := m.run(t, e.keys.drive1, "ip -4 route; cat /etc/resolv.conf; ls /run/notos-agent")
	t.Logf("ip -4 route; cat /etc/resolv.conf; ls /run/notos-agent:\n%s", out)
	if !strings.Contains(out, "default via 10.0.2.2 dev eth0") || !strings.Contains(out, "nameserver 10.0.2.3") {
		t.Errorf("want a default route via 10.0.2.2 and nameserver 10.0.2.3")
	}
	if strings.Contains(out, "lease-") {
		t.Errorf("a lease file exists: DHCP ran")
	}
	st := m.status(t, e.keys.drive1)
	checkSteps(t, st.State, map[string]agent.Outcome{"seed": agent.Skipped, "userdata": agent.Skipped})
	net := step(st.State, "net")
	t.Logf("net step: %s", net.Summary)
	if !strings.Contains(net.Summary, "static") || strings.Contains(strings.ToLower(net.Summary), "dhcp") {
		t.Errorf("net step summary %q, want static and no DHCP", net.Summary)
	}
	for k := range net.Facts {
		if strings.HasPrefix(k, "lease_") {
			t.Errorf("net step recorded a DHCP lease: %s=%s", k, net.Facts[k])
		}
	}
	if len(st.Leases) != 0 {
		t.Errorf("status shows %d leases, want none", len(st.Leases))
	}
}
