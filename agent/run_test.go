package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		c    Cmdline
		want config
	}{
		{
			name: "defaults",
			want: config{Timeout: DefaultTimeout, Label: DefaultLabel, Net: DefaultNet, Modules: []string{"af_packet", "isofs"}},
		},
		{
			name: "kernel command line over the defaults",
			c: Cmdline{Timeout: 30 * time.Second, Label: "CONFIG-2", Net: "dhcp", Modules: []string{"virtio_net", "isofs"},
				Ifaces: []string{"eth1"}, Skip: []string{"userdata"}, Debug: true},
			want: config{Timeout: 30 * time.Second, Label: "CONFIG-2", Net: "dhcp", Modules: []string{"af_packet", "isofs", "virtio_net"},
				Ifaces: []string{"eth1"}, Skip: []string{"userdata"}, Verbose: true},
		},
		{
			name: "flags over the kernel command line",
			o: Options{Timeout: 10 * time.Second, Label: "cidata", Net: "off", Modules: []string{"e1000"},
				Ifaces: []string{"eth0"}, Skip: []string{}, Quiet: true},
			c: Cmdline{Timeout: 30 * time.Second, Label: "CONFIG-2", Net: "dhcp", Modules: []string{"virtio_net"},
				Ifaces: []string{"eth1"}, Skip: []string{"userdata"}, Debug: true},
			want: config{Timeout: 10 * time.Second, Label: "cidata", Net: "off", Modules: []string{"af_packet", "isofs", "e1000"},
				Ifaces: []string{"eth0"}, Skip: []string{}},
		},
		{
			name: "--verbose without notos.debug",
			o:    Options{Verbose: true},
			want: config{Timeout: DefaultTimeout, Label: DefaultLabel, Net: DefaultNet, Modules: []string{"af_packet", "isofs"}, Verbose: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, resolve(tt.o, tt.c), cmp.AllowUnexported(config{})); diff != "" {
				t.Errorf("resolve mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsStageOneAndLocal(t *testing.T) {
	for argv0, want := range map[string]bool{
		"/etc/runit/1": true, "/nix/store/x-runit/1": true, "notos-agent": false,
		"/usr/bin/notos-agent": false, "1": false, "/etc/runit/11": false, "/etc/runit/1.local": false,
	} {
		if got := IsStageOne(argv0); got != want {
			t.Errorf("IsStageOne(%q) = %v, want %v", argv0, got, want)
		}
	}

	root := t.TempDir()
	local := filepath.Join(root, StageOneLocal)
	tests := []struct {
		name  string
		setup func()
		want  bool
	}{
		{"absent", func() {}, false},
		{"not executable", func() { os.MkdirAll(filepath.Dir(local), 0o755); os.WriteFile(local, []byte("#!/bin/sh\n"), 0o644) }, false},
		{"executable", func() { os.Chmod(local, 0o755) }, true},
		{"symlink to an executable", func() {
			os.Rename(local, local+".real")
			os.Symlink(local+".real", local)
		}, true},
		{"a directory", func() { os.Remove(local); os.Mkdir(local, 0o755) }, false},
	}
	for _, tt := range tests {
		tt.setup()
		p, ok := LocalStageOne(root)
		if ok != tt.want || p != local {
			t.Errorf("%s: LocalStageOne = %q, %v; want %q, %v", tt.name, p, ok, local, tt.want)
		}
	}
}

// runDrive builds a config-2 ISO the way OpenStack does (genisoimage -J
// -r -V config-2) from files (path → content) and returns its path.
func runDrive(t *testing.T, files map[string]string) string {
	t.Helper()
	tools := testenv.RequireCommands(t, "genisoimage")
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, "tree", p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := filepath.Join(dir, "config-2.iso")
	out, err := exec.Command(tools["genisoimage"], "-quiet", "-J", "-r", "-V", "config-2", "-o", iso, filepath.Join(dir, "tree")).CombinedOutput()
	if err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	return iso
}

// Secrets planted in the drive; none may reach state.json or a log.
const (
	sentinelPass     = "SENTINEL-ADMIN-PASS-3f9c"
	sentinelUserData = "SENTINEL-USER-DATA-7a1e"
)

func runTestKey(t *testing.T, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}

// doLayout is a DigitalOcean-like drive: openstack/latest and a dated
// copy, digitalocean_meta_data.json at the root, a random_seed, an
// admin_pass and a user_data script carrying the sentinels.
func doLayout(t *testing.T, keys ...string) map[string]string {
	pk := map[string]string{}
	for i, k := range keys {
		pk[string(rune('0'+i))] = k
	}
	seed := make([]byte, 512)
	rand.Read(seed)
	meta, _ := json.Marshal(map[string]any{
		"uuid": "129714139", "instance_id": "129714139", "hostname": "web_1.example.com",
		"public_keys": pk, "admin_pass": sentinelPass, "availability_zone": "ams3",
		"random_seed": base64.StdEncoding.EncodeToString(seed),
	})
	userData := "#!/bin/sh\n# " + sentinelUserData + "\necho hello\n"
	do, _ := json.Marshal(map[string]any{"droplet_id": 129714139, "hostname": "web_1.example.com", "public_keys": []string{}, "user_data": userData})
	files := map[string]string{"digitalocean_meta_data.json": string(do)}
	for _, v := range []string{"latest", "2015-10-16"} {
		files["openstack/"+v+"/meta_data.json"] = string(meta)
		files["openstack/"+v+"/user_data"] = userData
		files["openstack/"+v+"/network_data.json"] = `{"links":[],"networks":[],"services":[]}`
	}
	return files
}

type runOutcome struct {
	state  *State
	code   int
	stderr string
	kmsg   string
	file   State // state.json as read back
	raw    string
}

// runIn runs Run under root, with /dev/kmsg as a plain file there so that
// the kernel log lines can be read back.
func runIn(t *testing.T, root string, o Options) runOutcome {
	t.Helper()
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	kmsg := filepath.Join(root, "dev", "kmsg")
	os.WriteFile(kmsg, nil, 0o600)
	var stderr strings.Builder
	o.Root, o.Stderr, o.Version = root, &stderr, "test"
	st, code := Run(context.Background(), o)
	raw, err := os.ReadFile(filepath.Join(root, StatePath))
	if err != nil {
		t.Fatalf("state.json: %v", err)
	}
	var file State
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("parse state.json: %v", err)
	}
	k, _ := os.ReadFile(kmsg)
	return runOutcome{state: st, code: code, stderr: stderr.String(), kmsg: string(k), file: file, raw: string(raw)}
}

// outcomes maps step names to "outcome: summary-or-error".
func outcomes(st State) map[string]string {
	m := map[string]string{}
	for _, s := range st.Steps {
		m[s.Name] = string(s.Outcome)
	}
	return m
}

func noSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{sentinelPass, sentinelUserData} {
		if strings.Contains(s, secret) {
			t.Errorf("%s holds the secret %q:\n%s", what, secret, s)
		}
	}
}

// Tier 0: the whole run against a real ISO under a temporary root. The
// kernel is left alone there (mounts, modules, seed skipped) and the
// network is off by the kernel command line; keys, host name, user_data
// and state.json are real files. A second run changes nothing.
func TestRunOnDriveImage(t *testing.T) {
	k1, k2 := runTestKey(t, "alice@laptop"), runTestKey(t, "bob@desk")
	iso := runDrive(t, doLayout(t, k1, k2))
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte("console=ttyS0 notos.net=off notos.timeout=20s\n"), 0o644)

	first := runIn(t, root, Options{Drive: iso, DriveWait: time.Second})
	if first.code != 0 {
		t.Errorf("exit %d, want 0; stderr:\n%s", first.code, first.stderr)
	}
	want := map[string]string{
		"mounts": "skipped", "cmdline": "ok", "modules": "skipped", "drive": "ok", "links": "skipped",
		"seed": "skipped", "keys": "ok", "hostname": "ok", "net": "skipped", "userdata": "ok",
	}
	if diff := cmp.Diff(want, outcomes(first.file)); diff != "" {
		t.Errorf("step outcomes mismatch (-want +got):\n%s\nstderr:\n%s", diff, first.stderr)
	}
	if len(first.file.Steps) != len(StepNames) {
		t.Errorf("state.json has %d steps, want %d", len(first.file.Steps), len(StepNames))
	}
	for i, s := range first.file.Steps {
		if s.Name != StepNames[i] {
			t.Errorf("step %d is %q, want %q", i, s.Name, StepNames[i])
		}
	}
	if first.file.InstanceID != "129714139" || first.file.Source != iso || first.file.ExitCode != 0 || first.file.User != "root" {
		t.Errorf("state.json header: instance %q source %q exit %d user %q", first.file.InstanceID, first.file.Source, first.file.ExitCode, first.file.User)
	}
	// notos.timeout=20s moved the deadline.
	if d := first.file.Deadline.Sub(first.file.Started); d < 19*time.Second || d > 21*time.Second {
		t.Errorf("deadline %v after the start, want 20s (notos.timeout)", d)
	}

	keys, err := os.ReadFile(filepath.Join(root, "etc/ssh/authorized_keys.d/root"))
	if err != nil || string(keys) != k1+"\n"+k2+"\n" {
		t.Errorf("keys file = %q, %v; want both keys", keys, err)
	}
	host, _ := os.ReadFile(filepath.Join(root, "etc/hostname"))
	if string(host) != "web-1.example.com\n" {
		t.Errorf("/etc/hostname = %q", host)
	}
	ud, err := os.ReadFile(filepath.Join(root, UserDataPath))
	if err != nil || !strings.Contains(string(ud), sentinelUserData) {
		t.Errorf("user-data not saved: %v", err)
	}
	if !strings.Contains(first.stderr, "notos-agent: keys: 2 keys installed in "+root+"/etc/ssh/authorized_keys.d/root (changed) (") {
		t.Errorf("stderr lacks the keys line:\n%s", first.stderr)
	}
	if !strings.Contains(first.kmsg, "<6>notos-agent: hostname: web-1.example.com (changed)") {
		t.Errorf("kmsg lacks the hostname line:\n%s", first.kmsg)
	}
	for what, s := range map[string]string{"state.json": first.raw, "stderr": first.stderr, "kmsg": first.kmsg} {
		noSecrets(t, what, s)
	}

	second := runIn(t, root, Options{Drive: iso, DriveWait: time.Second, Verbose: true})
	if second.code != 0 {
		t.Errorf("rerun exit %d; stderr:\n%s", second.code, second.stderr)
	}
	for _, s := range second.file.Steps {
		if len(s.Changes) > 0 {
			t.Errorf("rerun: step %s changed %v", s.Name, s.Changes)
		}
	}
	if !strings.Contains(second.stderr, "nothing changed") || !strings.Contains(second.stderr, "not run: --root is not /") {
		t.Errorf("rerun stderr:\n%s", second.stderr)
	}
	for what, s := range map[string]string{"state.json": second.raw, "stderr": second.stderr, "kmsg": second.kmsg} {
		noSecrets(t, what, s)
	}
}

// No drive, or a drive whose meta_data.json is corrupt: the drive step
// fails, the keys already there stay, the run still ends and says so.
func TestRunWithoutUsableDrive(t *testing.T) {
	corrupt := doLayout(t, runTestKey(t, "x"))
	corrupt["openstack/latest/meta_data.json"] = `{"uuid": "1", "public_keys": `
	tests := []struct {
		name  string
		drive string
	}{
		{"no drive", filepath.Join(t.TempDir(), "absent.iso")},
		{"corrupt meta_data.json", runDrive(t, corrupt)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			keys := filepath.Join(root, "etc/ssh/authorized_keys.d/root")
			os.MkdirAll(filepath.Dir(keys), 0o755)
			old := runTestKey(t, "old@key") + "\n"
			os.WriteFile(keys, []byte(old), 0o600)

			got := runIn(t, root, Options{Drive: tt.drive, Net: "off"})
			if got.code != 1 {
				t.Errorf("exit %d, want 1", got.code)
			}
			want := map[string]string{
				"mounts": "skipped", "cmdline": "skipped", "modules": "skipped", "drive": "failed", "links": "skipped",
				"seed": "skipped", "keys": "skipped", "hostname": "skipped", "net": "skipped", "userdata": "skipped",
			}
			if diff := cmp.Diff(want, outcomes(got.file)); diff != "" {
				t.Errorf("step outcomes mismatch (-want +got):\n%s", diff)
			}
			if b, _ := os.ReadFile(keys); string(b) != old {
				t.Errorf("existing keys changed to %q", b)
			}
			if !strings.Contains(got.stderr, "notos-agent: drive: failed: ") || !strings.Contains(got.stderr, "keys: skipped: no metadata: the existing keys stay") {
				t.Errorf("stderr:\n%s", got.stderr)
			}
		})
	}
}

// A drive that never appears, waited for longer than the deadline: run
// abandons the drive step and everything after it, and returns at the
// deadline with state.json written.
func TestRunDeadline(t *testing.T) {
	root := t.TempDir()
	// Find scans root/sys/class/block: an empty one holds no drive.
	os.MkdirAll(filepath.Join(root, "sys/class/block"), 0o755)
	start := time.Now()
	got := runIn(t, root, Options{Timeout: 300 * time.Millisecond, DriveWait: time.Hour, Net: "off"})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("run took %v with a 300ms deadline", took)
	}
	if got.code != 1 {
		t.Errorf("exit %d, want 1", got.code)
	}
	o := outcomes(got.file)
	if o["drive"] != "abandoned" || o["keys"] != "abandoned" || o["userdata"] != "abandoned" {
		t.Errorf("outcomes %v, want drive and what follows abandoned", o)
	}
}

func TestNetReserve(t *testing.T) {
	for timeout, want := range map[time.Duration]time.Duration{
		5 * time.Second: 500 * time.Millisecond, 20 * time.Second: time.Second,
		60 * time.Second: 3 * time.Second, time.Hour: 3 * time.Second,
	} {
		if got := netReserve(timeout); got != want {
			t.Errorf("netReserve(%v) = %v, want %v", timeout, got, want)
		}
	}
}
