package vm_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/agent"
	"github.com/notos-agent/notos-agent/internal/guest"
	"github.com/notos-agent/notos-agent/internal/testenv"
	"github.com/notos-agent/notos-agent/internal/vm"
)

// runTimeout is what stage 1 gives `notos-agent run` (--timeout); a boot
// must reach stage 2 well inside it.
const runTimeout = 30 * time.Second

// TestRun boots the not-os-like guest (internal/guest: runit as PID 1,
// `notos-agent run` in /etc/runit/1, vda ext4 rootfs, vdb config-2, QEMU's
// user network and its DHCP server) once per kind of config drive and
// asserts from the console and the guest's files what issue 5 asks: keys,
// hostname, address and route, state.json, stage 2 reached; then without
// a drive, with a deadline shorter than the wait for one, with a corrupt
// meta_data.json, and with a random_seed and a user_data script. Each
// scenario logs its boot-to-stage-2 time and the run's duration.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: boots a kernel under QEMU five times")
	}
	testenv.RequireCommands(t, "qemu-system-x86_64", "busybox", "runit", "depmod", "mke2fs", "genisoimage", "ssh-keygen", "blkid", "sshd", "ssh")
	agentBin := testenv.AgentBinary(t)
	_, bakedPub := guest.KeyPair(t, "baked@image")
	baked := string(bakedPub)
	key1 := guest.KeyFiles(t, "first@drive")
	pub1 := readFile(t, key1+".pub")
	_, pub2 := guest.KeyPair(t, "second@drive")
	runArgs := []string{"--timeout", runTimeout.String()}

	t.Run("digitalocean-mkdrive", func(t *testing.T) {
		keys := filepath.Join(t.TempDir(), "keys.pub")
		if err := os.WriteFile(keys, append(slices.Clone(pub1), pub2...), 0o644); err != nil {
			t.Fatal(err)
		}
		drive := filepath.Join(t.TempDir(), "config-2.iso")
		if out, err := exec.Command(agentBin, "mkdrive", "-o", drive, "--digitalocean", "--key", keys, "--hostname", "droplet-vmtest").CombinedOutput(); err != nil {
			t.Fatalf("notos-agent mkdrive: %v\n%s", err, out)
		}
		// The same boot proves the guest's stage-2 services: sshd as
		// not-os runs it takes the drive's key, the lease keeper runs.
		ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
		defer cancel()
		m, rep := bootCtx(ctx, t, guest.Options{
			Agent: agentBin, Drive: drive, AuthorizedKeys: baked, RunArgs: runArgs,
			SSHD: true, ForwardSSH: true, NetKeeper: true,
		})
		if got, want := rep.AuthorizedKeys, string(pub1)+string(pub2); got != want {
			t.Errorf("/etc/ssh/authorized_keys.d/root = %q, want the drive's two keys %q (the baked key replaced)", got, want)
		}
		if rep.Hostname != "droplet-vmtest" || rep.EtcHostname != "droplet-vmtest" {
			t.Errorf("hostname %q, /etc/hostname %q, want droplet-vmtest", rep.Hostname, rep.EtcHostname)
		}
		checkDHCP(t, rep)
		checkDisks(t, rep, true)
		// Each step's line is in the kernel log too (a cloud's console
		// log shows it).
		for _, name := range agent.StepNames {
			if !slices.ContainsFunc(rep.Kmsg, func(l string) bool { return strings.Contains(l, "notos-agent: "+name+": ") }) {
				t.Errorf("kernel log has no line for step %s:\n%s", name, strings.Join(rep.Kmsg, "\n"))
			}
		}
		st := checkState(t, rep, "0", map[string]agent.Outcome{"seed": agent.Skipped, "userdata": agent.Skipped})
		if !strings.HasPrefix(st.Source, "/dev/vdb") {
			t.Errorf("state.json source = %q, want /dev/vdb", st.Source)
		}
		if st.InstanceID == "" {
			t.Errorf("state.json has no instance_id")
		}

		if _, err := m.WaitValue(ctx, "sshd"); err != nil {
			t.Fatal(err)
		}
		out, err := vm.SSHCommand(ctx, m.HostPort(22), key1, "hostname; readlink /proc/1/exe; sv status /etc/service/*").CombinedOutput()
		t.Logf("ssh with the drive's first key, %.2fs after QEMU started:\n%s", time.Since(m.Started).Seconds(), out)
		if err != nil {
			t.Fatalf("ssh: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 4 || lines[0] != "droplet-vmtest" || lines[1] != "/sbin/runit" ||
			!strings.HasPrefix(lines[2], "run: /etc/service/notos-net: (pid ") ||
			!strings.HasPrefix(lines[3], "run: /etc/service/sshd: (pid ") {
			t.Errorf("ssh 'hostname; readlink /proc/1/exe; sv status /etc/service/*' = %q, want droplet-vmtest, /sbin/runit, notos-net and sshd running", lines)
		}
	})

	t.Run("no-drive", func(t *testing.T) {
		// Stage 1 is the shipped examples/runit/1, unchanged.
		rep := boot(t, guest.Options{Agent: agentBin, AuthorizedKeys: baked, Stage1Script: guest.Example(t, "runit/1")})
		if !strings.Contains(rep.Console, "\nnotos-agent run failed; see /run/notos-agent/state.json\n") {
			t.Errorf("examples/runit/1 did not say that run failed (no drive) on the console")
		}
		if rep.AuthorizedKeys != baked {
			t.Errorf("/etc/ssh/authorized_keys.d/root = %q, want the baked key kept: %q", rep.AuthorizedKeys, baked)
		}
		checkDHCP(t, rep)
		checkDisks(t, rep, false)
		st := checkState(t, rep, "1", map[string]agent.Outcome{
			"drive": agent.Failed, "seed": agent.Skipped, "keys": agent.Skipped,
			"hostname": agent.Skipped, "userdata": agent.Skipped,
		})
		checkDuration(t, st)
	})

	// The deadline from the kernel command line (no --timeout flag to
	// override it) is shorter than the wait for a drive that never comes:
	// run gives up on what is pending, and the boot goes on.
	t.Run("deadline", func(t *testing.T) {
		const timeout = 3 * time.Second
		rep := boot(t, guest.Options{
			Agent: agentBin, AuthorizedKeys: baked,
			Cmdline: []string{"notos.timeout=" + timeout.String()},
		})
		if rep.AuthorizedKeys != baked {
			t.Errorf("/etc/ssh/authorized_keys.d/root = %q, want the baked key kept: %q", rep.AuthorizedKeys, baked)
		}
		var st agent.State
		if err := json.Unmarshal([]byte(rep.State), &st); err != nil {
			t.Fatalf("state.json: %v\n%s", err, rep.State)
		}
		if rep.RunExit != "1" || st.ExitCode != 1 {
			t.Errorf("notos-agent run exited %s, state.json exit_code %d; want 1 and 1", rep.RunExit, st.ExitCode)
		}
		if got := step(&st, "cmdline").Summary; !strings.Contains(got, "notos.timeout=3s") {
			t.Errorf("state.json cmdline step summary = %q, want notos.timeout=3s", got)
		}
		if d := st.Deadline.Sub(st.Started); d < timeout || d > timeout+time.Second {
			t.Errorf("state.json deadline %s after the start, want %s (from notos.timeout=)", d, timeout)
		}
		var outcomes []string
		for _, s := range st.Steps {
			outcomes = append(outcomes, s.Name+"="+string(s.Outcome))
		}
		t.Logf("steps: %s", strings.Join(outcomes, " "))
		if o := step(&st, "drive").Outcome; o != agent.Abandoned {
			t.Errorf("drive step %q, want abandoned at the deadline", o)
		}
		// state.json is written after the deadline: a little slack.
		d := st.Finished.Sub(st.Started)
		t.Logf("notos-agent run took %s (notos.timeout=%s)", d.Round(time.Millisecond), timeout)
		if d > timeout+time.Second {
			t.Errorf("notos-agent run took %s, want at most its %s deadline plus writing state.json", d, timeout)
		}
	})

	t.Run("corrupt-meta-data", func(t *testing.T) {
		dir := vm.WriteTree(t, t.TempDir(), map[string]string{
			"openstack/latest/meta_data.json":    `{"uuid": "vmtest-corrupt", "public_keys": {"0": "ssh-ed25519 AAAA`,
			"openstack/latest/network_data.json": `{"links": [], "networks": [], "services": []}`,
		})
		drive := vm.ISOImage(t, dir, "config-2", "-r", "-J")
		// The agent itself is /etc/runit/1, as a not-os image can have
		// it: options from the kernel command line, and the rest of
		// stage 1 in /etc/runit/1.local, run even though run failed.
		rep := boot(t, guest.Options{
			Agent: agentBin, Drive: drive, AuthorizedKeys: baked, AgentIsStage1: true,
			Cmdline: []string{"notos.timeout=" + runTimeout.String()},
		})
		if got := rep.Results.Values["stage1"]; got != "after-run" || rep.RunExit != "" {
			t.Errorf("stage 1: /etc/runit/1.local did not run after the agent as /etc/runit/1 (stage1=%q, run.exit=%q)", got, rep.RunExit)
		}
		if rep.AuthorizedKeys != baked {
			t.Errorf("/etc/ssh/authorized_keys.d/root = %q, want the baked key kept: %q", rep.AuthorizedKeys, baked)
		}
		checkDHCP(t, rep)
		st := checkState(t, rep, "1", map[string]agent.Outcome{
			"drive": agent.Failed, "seed": agent.Skipped, "keys": agent.Skipped,
			"hostname": agent.Skipped, "userdata": agent.Skipped,
		})
		checkDuration(t, st)
		// The console names the file that is broken.
		re := regexp.MustCompile(`(?m)^notos-agent: drive: failed: .*meta_data\.json`)
		if line := re.FindString(rep.Console); line == "" {
			t.Errorf("no console line matching %s", re)
		} else {
			t.Logf("console: %s", line)
		}
	})

	// OpenStack's drive (genisoimage -r -J from a tree) with a
	// random_seed, a user_data script and an admin_pass that must stay
	// secret.
	t.Run("random-seed-userdata", func(t *testing.T) {
		seed := make([]byte, 512)
		for i := range seed {
			seed[i] = byte(i*7 + 3)
		}
		md, err := json.Marshal(map[string]any{
			"uuid":        "vmtest-seed",
			"hostname":    "seeded",
			"public_keys": map[string]string{"0": strings.TrimSpace(string(pub1))},
			"random_seed": base64.StdEncoding.EncodeToString(seed),
			"admin_pass":  "SECRET-admin-vmtest",
		})
		if err != nil {
			t.Fatal(err)
		}
		// OpenStack's way: genisoimage -J -r from a tree.
		dir := vm.WriteTree(t, t.TempDir(), map[string]string{
			"openstack/latest/meta_data.json": string(md),
			// SECRET-user-data: user_data never reaches a log either.
			"openstack/latest/user_data": "#!/bin/sh\n# SECRET-user-data\necho \"user-data ran as uid $(id -u) on $(hostname)\"\n",
		})
		drive := vm.ISOImage(t, dir, "config-2", "-r", "-J")
		// A pool the CPU and the boot loader cannot fill: the seed is
		// what credits it, as on the seed's starved droplets. Stage 1
		// waits for the user_data script to have its log.
		rep := boot(t, guest.Options{
			Agent: agentBin, Drive: drive, AuthorizedKeys: baked,
			RunArgs: append(slices.Clone(runArgs), "--userdata-wait", "10s"),
			Cmdline: []string{"random.trust_cpu=off", "random.trust_bootloader=off"},
			Stage1: `vmtest_run userdata_log cat /var/log/notos-agent/user-data.log
vmtest_run userdata_record cat /var/lib/notos-agent/user-data.instance
vmtest_run userdata_saved stat -c '%a %s' /run/notos-agent/user-data
`,
		})
		if rep.AuthorizedKeys != string(pub1) {
			t.Errorf("/etc/ssh/authorized_keys.d/root = %q, want %q", rep.AuthorizedKeys, pub1)
		}
		if rep.Hostname != "seeded" {
			t.Errorf("hostname %q, want seeded", rep.Hostname)
		}
		checkDHCP(t, rep)
		st := checkState(t, rep, "0", nil)
		res := rep.Results
		if got := strings.Join(res.Blocks["userdata_log"], "\n"); !strings.Contains(got, "user-data ran as uid 0 on seeded") {
			t.Errorf("/var/log/notos-agent/user-data.log = %q, want the script's line", got)
		}
		if got := strings.Join(res.Blocks["userdata_record"], "\n"); !strings.Contains(got, "vmtest-seed") {
			t.Errorf("/var/lib/notos-agent/user-data.instance = %q, want the instance id vmtest-seed", got)
		}
		if got := strings.Join(res.Blocks["userdata_saved"], " "); !strings.HasPrefix(got, "600 ") {
			t.Errorf("/run/notos-agent/user-data: mode and size %q, want 600", got)
		}
		for _, secret := range []string{"SECRET-admin-vmtest", "SECRET-user-data"} {
			if strings.Contains(rep.State, secret) {
				t.Errorf("state.json holds %s", secret)
			}
			if strings.Contains(rep.Console, secret) {
				t.Errorf("the console shows %s", secret)
			}
		}
		s := step(st, "seed")
		if got := s.Facts["seed_bytes"]; got != "512" {
			t.Errorf("state.json seed step seed_bytes = %q, want 512 (%+v)", got, s)
		}
		t.Logf("entropy_avail: %s before run, %s after (stage 1), %s in stage 2; the agent saw %s -> %s",
			rep.EntropyBefore, rep.EntropyAfter, rep.EntropyStage2, s.Facts["entropy_avail_before"], s.Facts["entropy_avail_after"])
		// 512 bytes credit 4096 bits: the pool (256 bits) is full after.
		before, err1 := strconv.Atoi(rep.EntropyBefore)
		after, err2 := strconv.Atoi(rep.EntropyAfter)
		if err1 != nil || err2 != nil || before >= 256 || after != 256 {
			t.Errorf("entropy_avail %q before the run, %q after; want under 256 before (CPU not trusted), 256 after", rep.EntropyBefore, rep.EntropyAfter)
		}
		if got := s.Facts["entropy_avail_after"]; got != "256" {
			t.Errorf("state.json seed step entropy_avail_after = %q, want 256", got)
		}
	})
}

// boot boots the guest and returns its stage-2 report; QEMU is killed.
func boot(t *testing.T, o guest.Options) *guest.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	m, rep := bootCtx(ctx, t, o)
	m.Kill()
	return rep
}

// bootCtx boots the guest and returns it running with its stage-2
// report, logging the times and the agent's lines.
func bootCtx(ctx context.Context, t *testing.T, o guest.Options) (*guest.Machine, *guest.Report) {
	t.Helper()
	m := guest.Boot(ctx, t, o)
	rep, err := m.WaitReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot to stage 2: %.2fs (host clock, from QEMU's start); guest uptime (s): before run %q, after %q, at stage 2 %q; run exit %q",
		rep.Stage2.Seconds(), rep.UptimeBeforeRun, rep.UptimeAfterRun, rep.UptimeStage2, rep.RunExit)
	if out := regexp.MustCompile(`(?m)^notos-agent: .*$`).FindAllString(rep.Console, -1); len(out) > 0 {
		t.Logf("agent's lines on the console:\n%s", strings.Join(out, "\n"))
	}
	return m, rep
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkDHCP asserts the address and default route QEMU's DHCP server gives.
func checkDHCP(t *testing.T, rep *guest.Report) {
	t.Helper()
	addr := strings.Join(rep.Addr, "\n")
	if !regexp.MustCompile(`inet 10\.0\.2\.15/24 .*eth0`).MatchString(addr) {
		t.Errorf("ip -4 addr has no 10.0.2.15/24 on eth0:\n%s", addr)
	}
	if !slices.ContainsFunc(rep.Route, func(l string) bool {
		return strings.HasPrefix(l, "default via 10.0.2.2 dev eth0")
	}) {
		t.Errorf("ip -4 route has no default via 10.0.2.2 dev eth0:\n%s", strings.Join(rep.Route, "\n"))
	}
}

// checkDisks asserts the DigitalOcean layout the guest sees.
func checkDisks(t *testing.T, rep *guest.Report, drive bool) {
	t.Helper()
	blkid := strings.Join(rep.Blkid, "\n")
	if !regexp.MustCompile(`(?m)^/dev/vda: .*LABEL="rootfs" .*TYPE="ext4"`).MatchString(blkid) {
		t.Errorf("blkid shows no ext4 vda labelled rootfs:\n%s", blkid)
	}
	if got := regexp.MustCompile(`(?m)^/dev/vdb: .*LABEL="config-2" .*TYPE="iso9660"`).MatchString(blkid); got != drive {
		t.Errorf("blkid: config-2 ISO on vdb = %v, want %v:\n%s", got, drive, blkid)
	}
}

// checkState parses state.json and checks the exit code stage 1 saw and
// state.json records, and that every step ran with the outcome given in
// want, ok when not listed.
func checkState(t *testing.T, rep *guest.Report, exit string, want map[string]agent.Outcome) *agent.State {
	t.Helper()
	// Stage 1 prints the exit status unless the agent is /etc/runit/1.
	if rep.RunExit != "" && rep.RunExit != exit {
		t.Errorf("notos-agent run exited %s, want %s", rep.RunExit, exit)
	}
	var st agent.State
	if err := json.Unmarshal([]byte(rep.State), &st); err != nil {
		t.Fatalf("state.json: %v\n%s", err, rep.State)
	}
	if strconv.Itoa(st.ExitCode) != exit {
		t.Errorf("state.json exit_code = %d, want %s", st.ExitCode, exit)
	}
	got := map[string]agent.Outcome{}
	var names []string
	for _, s := range st.Steps {
		got[s.Name] = s.Outcome
		names = append(names, s.Name)
	}
	if diff := cmp.Diff(agent.StepNames, names); diff != "" {
		t.Errorf("state.json steps (-want +got):\n%s", diff)
	}
	wantAll := map[string]agent.Outcome{}
	for _, n := range agent.StepNames {
		wantAll[n] = agent.OK
		if o, ok := want[n]; ok {
			wantAll[n] = o
		}
	}
	if diff := cmp.Diff(wantAll, got); diff != "" {
		t.Errorf("state.json step outcomes (-want +got):\n%s\n%s", diff, rep.State)
	}
	return &st
}

// checkDuration asserts the run ended well inside its deadline and logs it.
func checkDuration(t *testing.T, st *agent.State) {
	t.Helper()
	d, timeout := st.Finished.Sub(st.Started), st.Deadline.Sub(st.Started)
	t.Logf("notos-agent run took %s (deadline %s)", d.Round(time.Millisecond), timeout.Round(time.Millisecond))
	if d > timeout/2 {
		t.Errorf("notos-agent run took %s, want well inside its %s deadline", d, timeout)
	}
}

// step returns the named step's result from state.json.
func step(st *agent.State, name string) agent.StepResult {
	for _, s := range st.Steps {
		if s.Name == name {
			return s
		}
	}
	return agent.StepResult{}
}
