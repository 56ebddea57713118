package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/internal/netnstest"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

// TestMain builds the binary once for every test of this package that runs
// it (testenv.AgentBinary would otherwise link one per test), unless
// NOTOS_AGENT_BIN names one already, as `make test` does.
func TestMain(m *testing.M) {
	os.Exit(func() int {
		if os.Getenv("NOTOS_AGENT_BIN") != "" {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "notos-agent-cmd-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "notos-agent")
		build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build notos-agent: %v\n%s", err, out)
			return 1
		}
		os.Setenv("NOTOS_AGENT_BIN", bin)
		return m.Run()
	}())
}

// doDrive is a DigitalOcean config drive's tree: see agent/testdata/README.md.
const doDrive = "../../agent/testdata/do-drive"

// doDriveKeys are the lines keys must write for doDrive: meta_data.json's
// keys "0" and "1" ("2" is cut short; the DigitalOcean list repeats "0").
func doDriveKeys(t *testing.T) string {
	t.Helper()
	var meta struct {
		PublicKeys map[string]string `json:"public_keys"`
	}
	b, err := os.ReadFile(filepath.Join(doDrive, "openstack/latest/meta_data.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	return meta.PublicKeys["0"] + "\n" + meta.PublicKeys["1"] + "\n"
}

// copyDrive copies a drive tree into a temporary directory and applies
// edit (relative path → new content) to it.
func copyDrive(t *testing.T, src string, edit map[string]string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "tree")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	for name, content := range edit {
		if err := os.WriteFile(filepath.Join(dst, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// driveImage makes a config drive image of tree with one of the tools
// clouds use: "genisoimage" (-J -r -V config-2, as OpenStack does),
// "xorriso" (-as mkisofs, the same flags) or "vfat" (mkfs.vfat -n CONFIG-2,
// FAT16, filled with mcopy).
func driveImage(t *testing.T, tree, tool string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "config-2."+tool)
	var cmds []*exec.Cmd
	switch tool {
	case "genisoimage":
		bin := testenv.RequireCommands(t, "genisoimage")["genisoimage"]
		cmds = append(cmds, exec.Command(bin, "-quiet", "-J", "-r", "-V", "config-2", "-o", img, tree))
	case "xorriso":
		bin := testenv.RequireCommands(t, "xorriso")["xorriso"]
		cmds = append(cmds, exec.Command(bin, "-as", "mkisofs", "-quiet", "-J", "-r", "-V", "config-2", "-o", img, tree))
	case "vfat":
		bins := testenv.RequireCommands(t, "mkfs.vfat", "mcopy")
		cmds = append(cmds, exec.Command(bins["mkfs.vfat"], "-C", "-n", "CONFIG-2", img, "8192"))
		mcopy := exec.Command(bins["mcopy"], "-s", "-i", img, filepath.Join(tree, "digitalocean_meta_data.json"), filepath.Join(tree, "openstack"), "::/")
		mcopy.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		cmds = append(cmds, mcopy)
	default:
		t.Fatalf("no image tool %q", tool)
	}
	for _, cmd := range cmds {
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	return img
}

// agentRun runs the real binary and returns its output and exit status.
func agentRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(testenv.AgentBinary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run notos-agent %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

const skippedKeyWarning = `notos-agent: keys: warning: key "2" skipped: not an SSH public key: ssh: no key found; last parsing error for ignored line: illegal base64 data at input byte 9` + "\n"

func TestKeysCommand(t *testing.T) {
	for _, tool := range []string{"genisoimage", "xorriso", "vfat"} {
		t.Run(tool, func(t *testing.T) {
			img := driveImage(t, doDrive, tool)
			root := t.TempDir()
			keys := filepath.Join(root, "etc/ssh/authorized_keys.d/root")
			var before os.FileInfo
			for i, state := range []string{"changed", "unchanged"} {
				stdout, stderr, code := agentRun(t, "keys", "--drive", img, "--root", root)
				want := "notos-agent: keys: 2 keys installed in " + keys + " (" + state + "); hostname: web-1 (" + state + ")\n"
				if diff := cmp.Diff([]any{want, skippedKeyWarning, 0}, []any{stdout, stderr, code}); diff != "" {
					t.Errorf("run %d: stdout, stderr, exit (-want +got):\n%s", i+1, diff)
				}
				b, err := os.ReadFile(keys)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(doDriveKeys(t), string(b)); diff != "" {
					t.Errorf("run %d: %s (-want +got):\n%s", i+1, keys, diff)
				}
				fi, err := os.Stat(keys)
				if err != nil {
					t.Fatal(err)
				}
				if before != nil && (!os.SameFile(before, fi) || !fi.ModTime().Equal(before.ModTime())) {
					t.Errorf("the rerun replaced %s", keys)
				}
				before = fi
			}
			if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(b) != "web-1\n" {
				t.Errorf("etc/hostname = %q, want web-1", b)
			}
		})
	}
}

func TestKeysCommandUserAndNoHostname(t *testing.T) {
	img := driveImage(t, doDrive, "genisoimage")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nops:x:1042:1042::/home/ops:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, code := agentRun(t, "keys", "--drive", img, "--root", root, "--user", "ops", "--no-hostname")
	keys := filepath.Join(root, "etc/ssh/authorized_keys.d/ops")
	if want := "notos-agent: keys: 2 keys installed in " + keys + " (changed)\n"; stdout != want || code != 0 {
		t.Errorf("keys --user ops --no-hostname: %q, exit %d; want %q, 0", stdout, code, want)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/hostname")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--no-hostname wrote etc/hostname: %v", err)
	}
}

// TestKeysCommandFailures: each failure exits 1 with one stderr line
// naming the step and what is at fault, and the existing key file is
// still there, unchanged.
func TestKeysCommandFailures(t *testing.T) {
	const old = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGIlfDubwlrgJ/RlOF45mvvVDIx+D7L6xvbBk6VnCr2x old@key\n"
	good := driveImage(t, doDrive, "genisoimage")
	for _, tt := range []struct {
		name string
		// setup prepares root and returns the drive to read and the
		// file whose content must stay old.
		setup   func(t *testing.T, root string) (drive, keep string)
		args    []string
		wantErr string // the whole stderr line after "notos-agent: "
		wantOut string // the summary line; "" when the drive is not read
	}{
		{name: "no such drive",
			setup:   func(t *testing.T, root string) (string, string) { return "/nonexistent/config-2.iso", "" },
			wantErr: "drive: open drive: open /nonexistent/config-2.iso: no such file or directory"},
		{name: "malformed meta_data.json",
			setup: func(t *testing.T, root string) (string, string) {
				tree := copyDrive(t, doDrive, map[string]string{"openstack/latest/meta_data.json": `{"public_keys": {"0": "ssh-ed25519 AAAA`})
				return driveImage(t, tree, "genisoimage"), ""
			},
			wantErr: "drive: DRIVE: parse openstack/latest/meta_data.json: unexpected end of JSON input"},
		{name: "symlinked key file",
			setup: func(t *testing.T, root string) (string, string) {
				victim := filepath.Join(t.TempDir(), "victim")
				writeOld(t, victim, old)
				if err := os.MkdirAll(filepath.Join(root, "etc/ssh/authorized_keys.d"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(victim, filepath.Join(root, "etc/ssh/authorized_keys.d/root")); err != nil {
					t.Fatal(err)
				}
				return good, victim
			},
			wantErr: "keys: write ROOT/etc/ssh/authorized_keys.d/root: refusing to write through a symbolic link",
			wantOut: "keys: failed; hostname: web-1 (changed)"},
		{name: "unknown user",
			setup:   func(t *testing.T, root string) (string, string) { return good, "" },
			args:    []string{"--user", "nobody"},
			wantErr: `keys: look up user "nobody": open ROOT/etc/passwd: no such file or directory`,
			wantOut: "keys: failed; hostname: web-1 (changed)"},
		{name: "unusable hostname",
			setup: func(t *testing.T, root string) (string, string) {
				tree := copyDrive(t, doDrive, map[string]string{
					"openstack/latest/meta_data.json": `{"uuid": "1", "hostname": "___", "public_keys": {}}`,
					"digitalocean_meta_data.json":     `{"droplet_id": 1}`,
				})
				return driveImage(t, tree, "genisoimage"), ""
			},
			wantErr: `hostname: hostname: host name "___": no usable host name`,
			wantOut: "keys: no valid key on the drive, ROOT/etc/ssh/authorized_keys.d/root left untouched; hostname: failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			keys := filepath.Join(root, "etc/ssh/authorized_keys.d/root")
			drive, keep := tt.setup(t, root)
			if keep == "" {
				keep = keys
				writeOld(t, keep, old)
			}
			stdout, stderr, code := agentRun(t, append([]string{"keys", "--drive", drive, "--root", root}, tt.args...)...)
			r := strings.NewReplacer("ROOT", root, "DRIVE", drive)
			wantErr, wantOut := r.Replace("notos-agent: "+tt.wantErr+"\n"), ""
			if tt.wantOut != "" {
				wantOut = r.Replace("notos-agent: " + tt.wantOut + "\n")
			}
			if diff := cmp.Diff([]any{1, wantErr, wantOut}, []any{code, stderr, stdout}); diff != "" {
				t.Errorf("exit, stderr, stdout (-want +got):\n%s", diff)
			}
			if b, _ := os.ReadFile(keep); string(b) != old {
				t.Errorf("%s = %q, want it untouched", keep, b)
			}
		})
	}
}

func writeOld(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeysCommandNoValidKey: the seed's drive, whose only key was cut
// short, leaves the existing key file alone and is not a failure.
func TestKeysCommandNoValidKey(t *testing.T) {
	seed, err := os.ReadFile("../../../shared/fixtures/not-os/digitalocean-configdrive-openstack-latest-meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	tree := copyDrive(t, doDrive, map[string]string{
		"openstack/latest/meta_data.json": string(seed),
		"digitalocean_meta_data.json":     `{"droplet_id": 129714139, "public_keys": ""}`,
	})
	img := driveImage(t, tree, "genisoimage")
	root := t.TempDir()
	keys := filepath.Join(root, "etc/ssh/authorized_keys.d/root")
	const old = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGIlfDubwlrgJ/RlOF45mvvVDIx+D7L6xvbBk6VnCr2x old@key\n"
	writeOld(t, keys, old)
	stdout, stderr, code := agentRun(t, "keys", "--drive", img, "--root", root)
	want := "notos-agent: keys: no valid key on the drive, " + keys + " left untouched; hostname: not-os-config-2.qcow2.s-1vcpu-1gb-ams3-01 (changed)\n"
	if stdout != want || code != 0 || !strings.Contains(stderr, `key "0" skipped`) {
		t.Errorf("stdout %q, stderr %q, exit %d; want %q, a warning about key \"0\", exit 0", stdout, stderr, code, want)
	}
	if b, _ := os.ReadFile(keys); string(b) != old {
		t.Errorf("%s = %q, want it untouched", keys, b)
	}
}

func TestKeysCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"keys", "--bogus"},
		{"keys", "extra-argument"},
		{"keys", "--drive-wait", "soon"},
		{"show", "--bogus"},
		{"show", "extra-argument"},
	} {
		stdout, stderr, code := agentRun(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "Usage: notos-agent "+args[0]+" ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and the usage on stderr", args, code, stdout, stderr)
		}
	}
}

// TestKeysCommandKernelHostname runs `keys --root /` in a UTS and mount
// namespace of its own with a tmpfs on /etc: the kernel host name and
// /etc/hostname change there, never on this machine.
func TestKeysCommandKernelHostname(t *testing.T) {
	netnstest.Tier1(t)
	unshare := testenv.RequireCommands(t, "unshare")["unshare"]
	img := driveImage(t, doDrive, "genisoimage")
	bin := testenv.AgentBinary(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount -t tmpfs -o size=1m tmpfs /etc
"$1" keys --drive "$2" --root / 2>/dev/null
"$1" keys --drive "$2" --root / 2>/dev/null
cat /proc/sys/kernel/hostname /etc/hostname /etc/ssh/authorized_keys.d/root`
	cmd := exec.Command(unshare, "--uts", "--mount", "--propagation", "private", "sh", "-c", script, "sh", bin, img)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	want := "notos-agent: keys: 2 keys installed in /etc/ssh/authorized_keys.d/root (changed); hostname: web-1 (changed)\n" +
		"notos-agent: keys: 2 keys installed in /etc/ssh/authorized_keys.d/root (unchanged); hostname: web-1 (unchanged)\n" +
		"web-1\nweb-1\n" + doDriveKeys(t)
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("in the namespace (-want +got):\n%s", diff)
	}
	if after, _ := os.Hostname(); after != host {
		t.Errorf("this machine's host name changed from %q to %q", host, after)
	}
}

// TestKeysCommandSSHLogin: a real sshd accepts the key file keys writes
// (StrictModes on), and refuses a key that is not on the drive. sshd runs
// in private network and mount namespaces: the keys root is a fresh tmpfs
// on /mnt (StrictModes rejects anything under the world-writable /tmp) and
// /run a tmpfs holding sshd's privilege separation directory. The ssh
// client joins those namespaces with nsenter.
func TestKeysCommandSSHLogin(t *testing.T) {
	netnstest.Tier1(t)
	tools := testenv.RequireCommands(t, "unshare", "nsenter", "sshd", "ssh", "ssh-keygen", "ip")
	dir := t.TempDir()
	_, lines := keyFile(t, dir, "ed25519", "ed25519")
	// The drive lists the first key only; the second must be refused.
	tree := copyDrive(t, doDrive, map[string]string{
		"openstack/latest/meta_data.json": `{"uuid": "1", "hostname": "web-1", "public_keys": {"0": "` + lines[0] + `"}}`,
		"digitalocean_meta_data.json":     `{"droplet_id": 1}`,
	})
	img := driveImage(t, tree, "genisoimage")
	script := `set -eu
mount -t tmpfs -o mode=0755 tmpfs /mnt
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/sshd
ip link set lo up
"$BIN" keys --drive "$IMG" --root /mnt/root --no-hostname >&2
"$KEYGEN" -q -t ed25519 -N '' -f /mnt/host_key
cat > /mnt/sshd_config <<CFG
ListenAddress 127.0.0.1:2222
HostKey /mnt/host_key
AuthorizedKeysFile /mnt/root/etc/ssh/authorized_keys.d/%u
StrictModes yes
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
CFG
exec "$SSHD" -D -e -f /mnt/sshd_config
`
	// unshare without --fork execs sh, which execs sshd: one process, a
	// child of this test, killed at the end whatever happens.
	sshd := exec.Command(tools["unshare"], "--mount", "--net", "--propagation", "private", "sh", "-c", script)
	sshd.Env = append(os.Environ(), "BIN="+testenv.AgentBinary(t), "IMG="+img, "KEYGEN="+tools["ssh-keygen"], "SSHD="+tools["sshd"])
	stderr, err := sshd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sshd.Process.Kill(); sshd.Wait() })

	// Wait for "Server listening" (sshd -e logs to stderr), or for the
	// script to end without it; the deadline kills sshd, ending the read.
	deadline := time.AfterFunc(30*time.Second, func() { sshd.Process.Kill() })
	defer deadline.Stop()
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Server listening on 127.0.0.1 port 2222") {
			break
		}
	}
	if !strings.Contains(log.String(), "Server listening") {
		t.Fatalf("sshd did not start:\n%s", log.String())
	}
	go io.Copy(io.Discard, stderr) // sshd must never block on its log
	if want := "1 key installed in /mnt/root/etc/ssh/authorized_keys.d/root (changed)"; !strings.Contains(log.String(), want) {
		t.Errorf("keys output lacks %q:\n%s", want, log.String())
	}

	login := func(key string) (string, error) {
		out, err := exec.Command(tools["nsenter"], "-t", strconv.Itoa(sshd.Process.Pid), "--net", "--mount",
			tools["ssh"], "-F", "/dev/null", "-i", key, "-p", "2222", "-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
			"root@127.0.0.1", "echo", "logged in").CombinedOutput()
		return string(out), err
	}
	if out, err := login(filepath.Join(dir, "ed25519a")); err != nil || out != "logged in\n" {
		t.Errorf("ssh with the drive's key: %v\n%s", err, out)
	}
	if out, err := login(filepath.Join(dir, "ed25519b")); err == nil || !strings.Contains(out, "Permission denied (publickey)") {
		t.Errorf("ssh with a key not on the drive: %v, want Permission denied\n%s", err, out)
	}
}

// TestKeysCommandReadOnlyRoot (Tier 1): --root on a read-only mount (made in
// a private mount namespace) fails with one line naming the file and the
// error, and the key file and host name there stay as they were.
func TestKeysCommandReadOnlyRoot(t *testing.T) {
	netnstest.Tier1(t)
	unshare := testenv.RequireCommands(t, "unshare")["unshare"]
	img := driveImage(t, doDrive, "genisoimage")
	root := t.TempDir()
	keys := filepath.Join(root, "etc/ssh/authorized_keys.d/root")
	const old = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGIlfDubwlrgJ/RlOF45mvvVDIx+D7L6xvbBk6VnCr2x old@key\n"
	writeOld(t, keys, old)
	writeOld(t, filepath.Join(root, "etc/hostname"), "old-name\n")
	script := `mount --bind "$2" "$2" && mount -o remount,bind,ro "$2" && exec "$1" keys --drive "$3" --root "$2"`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", testenv.AgentBinary(t), root, img)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("keys on a read-only root: %v, want exit 1\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	wantKeys := "notos-agent: keys: create temporary file in " + filepath.Dir(keys) + ": open "
	wantHost := "notos-agent: hostname: "
	if len(lines) != 2 || !strings.HasPrefix(lines[0], wantKeys) || !strings.HasSuffix(lines[0], "read-only file system") ||
		!strings.HasPrefix(lines[1], wantHost) || !strings.HasSuffix(lines[1], "read-only file system") {
		t.Errorf("stderr:\n%s\nwant a keys line %q... and a hostname line, each ending in EROFS", stderr.String(), wantKeys)
	}
	if got := stdout.String(); got != "notos-agent: keys: failed; hostname: failed\n" {
		t.Errorf("stdout = %q", got)
	}
	for path, want := range map[string]string{keys: old, filepath.Join(root, "etc/hostname"): "old-name\n"} {
		if b, _ := os.ReadFile(path); string(b) != want {
			t.Errorf("%s = %q, want %q", path, b, want)
		}
	}
}
