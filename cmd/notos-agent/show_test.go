package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/internal/netnstest"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

func TestShowCommand(t *testing.T) {
	img := driveImage(t, doDrive, "genisoimage")
	stdout, stderr, code := agentRun(t, "show", "--drive", img, "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("show --json: exit %d, stderr %q", code, stderr)
	}
	var got struct {
		Source     string   `json:"source"`
		FSType     string   `json:"fstype"`
		Version    string   `json:"version"`
		InstanceID string   `json:"instance_id"`
		Hostname   string   `json:"hostname"`
		PublicKeys []string `json:"public_keys"`
		AdminPass  string   `json:"admin_pass"`
		UserData   string   `json:"user_data"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("show --json printed no JSON object: %v\n%s", err, stdout)
	}
	keys := strings.Split(strings.TrimSuffix(doDriveKeys(t), "\n"), "\n")
	want := got
	want.Source, want.FSType, want.Version, want.InstanceID, want.Hostname = img, "iso9660", "latest", "48151623", "web-1"
	want.PublicKeys, want.AdminPass, want.UserData = keys, "present", "absent"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("show --json (-want +got):\n%s", diff)
	}

	stdout, stderr, code = agentRun(t, "show", "--drive", img)
	if code != 0 || stderr != "" {
		t.Fatalf("show: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"source:       " + img + " (iso9660)\n",
		"instance id:  48151623\n",
		"hostname:     web-1 (from hostname)\n",
		"keys:         2 to install\n",
		"skipped keys: 1\n",
		"network_data.json: 2 links, 2 networks\n",
		"  public mac=52:54:00:12:34:56 ipv4=203.0.113.10/255.255.240.0 gw=203.0.113.1",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, stdout)
		}
	}
}

// TestShowNeverPrintsSecrets: a drive whose admin_pass and user_data (in
// both metadata files) hold a sentinel; it appears in no output of show,
// with or without --json, nor of keys.
func TestShowNeverPrintsSecrets(t *testing.T) {
	const sentinel = "SENTINEL-7f3a9c-do-not-print"
	tree := copyDrive(t, doDrive, map[string]string{
		"openstack/latest/meta_data.json": `{"uuid": "48151623", "hostname": "web-1", "admin_pass": "` + sentinel + `",
			"public_keys": {"0": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGP8rdwQ2SZ3uRSMTOOEj28jsmm4zRRMWgUIzTSVc8Cy carol@desk"}}`,
		"openstack/latest/user_data":  "#cloud-config\npassword: " + sentinel + "\n",
		"digitalocean_meta_data.json": `{"droplet_id": 48151623, "hostname": "web-1", "user_data": "` + sentinel + `"}`,
	})
	img := driveImage(t, tree, "genisoimage")
	for _, args := range [][]string{
		{"show", "--drive", img},
		{"show", "--drive", img, "--json"},
		{"keys", "--drive", img, "--root", t.TempDir()},
	} {
		stdout, stderr, code := agentRun(t, args...)
		if code != 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
		if strings.Contains(stdout+stderr, sentinel) {
			t.Errorf("%q printed a secret:\nstdout:\n%s\nstderr:\n%s", args, stdout, stderr)
		}
		if args[0] == "show" && (!strings.Contains(stdout, "admin_pass") || !strings.Contains(stdout, "present")) {
			t.Errorf("%q does not say admin_pass is present:\n%s", args, stdout)
		}
	}
}

func TestHelp(t *testing.T) {
	stdout, stderr, code := agentRun(t, "--help")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: notos-agent COMMAND [flags]\n") {
		t.Errorf("--help: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	for _, c := range []string{"show", "keys"} {
		if !strings.Contains(stdout, "\n  "+c+" ") {
			t.Errorf("--help does not list %s:\n%s", c, stdout)
		}
		out, errOut, code := agentRun(t, c, "--help")
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage: notos-agent "+c+" [--drive PATH") ||
			!strings.Contains(out, "\nFlags:\n") || !strings.Contains(out, "-drive-wait duration") {
			t.Errorf("%s --help: exit %d, stderr %q, stdout:\n%s", c, code, errOut, out)
		}
	}
}

// TestShowByLabel (Tier 1, root): the drive is found by its label alone, on
// a loop device, as on a cloud. The label is unique to this test so that
// another test's drive attached meanwhile cannot answer, and is given in
// another case than the volume's, as CONFIG-2 drives need.
func TestShowByLabel(t *testing.T) {
	netnstest.Tier1(t)
	tools := testenv.RequireCommands(t, "genisoimage", "losetup")
	label := fmt.Sprintf("CFG-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	img := filepath.Join(t.TempDir(), "drive.iso")
	if out, err := exec.Command(tools["genisoimage"], "-quiet", "-J", "-r", "-V", label, "-o", img, doDrive).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	out, err := exec.Command(tools["losetup"], "--find", "--show", "--read-only", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(tools["losetup"], "-d", dev).Run() })

	stdout, stderr, code := agentRun(t, "show", "--label", strings.ToLower(label), "--drive-wait", "10s", "--json")
	var got struct {
		Source   string `json:"source"`
		Hostname string `json:"hostname"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || got.Source != dev || got.Hostname != "web-1" {
		t.Errorf("show --label %s: exit %d, stdout %s, stderr %q; want source %s, hostname web-1", strings.ToLower(label), code, stdout, stderr, dev)
	}
}
