package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

// keyFile writes n fresh ssh-keygen keys into one authorized_keys file and
// returns its path and the key lines.
func keyFile(t *testing.T, dir string, types ...string) (string, []string) {
	t.Helper()
	bin := testenv.RequireCommands(t, "ssh-keygen")["ssh-keygen"]
	var lines []string
	for i, typ := range types {
		k := filepath.Join(dir, typ+string(rune('a'+i)))
		if out, err := exec.Command(bin, "-q", "-t", typ, "-N", "", "-C", typ+"@test", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		b, err := os.ReadFile(k + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(string(b)))
	}
	p := filepath.Join(dir, strings.Join(types, "-")+".keys")
	if err := os.WriteFile(p, []byte("# test keys\n"+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, lines
}

func TestMkdriveWritesWhatLoadReads(t *testing.T) {
	dir := t.TempDir()
	k1, lines1 := keyFile(t, dir, "ed25519")
	k2, lines2 := keyFile(t, dir, "ecdsa", "ed25519")
	net := filepath.Join(dir, "network.json")
	netJSON := `{"links":[{"id":"eth0","type":"phy","ethernet_mac_address":"52:54:00:12:34:56"}],"networks":[{"id":"n0","type":"ipv4","link":"eth0","ip_address":"10.0.2.15","netmask":"255.255.255.0","routes":[{"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"10.0.2.2"}]}],"services":[{"type":"dns","address":"10.0.2.3"}]}`
	user := filepath.Join(dir, "user-data")
	for p, b := range map[string]string{net: netJSON, user: "secret-token\n"} {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, format := range []string{"iso", "vfat"} {
		t.Run(format, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "drive."+format)
			var stdout, stderr bytes.Buffer
			code := cmdMkdrive([]string{"-o", img, "--format", format, "--key", k1, "--key", k2,
				"--hostname", "web-1", "--uuid", "129714139", "--network-data", net, "--user-data", user,
				"--meta", "role=web", "--meta", "tier=a=b", "--digitalocean"}, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			wantOut := "mkdrive: wrote " + img + " (" + format + `, label ` + map[string]string{"iso": "config-2", "vfat": "CONFIG-2"}[format] +
				`): uuid 129714139, hostname "web-1", keys 3, user_data present, digitalocean true` + "\n"
			if stdout.String() != wantOut || stderr.Len() != 0 {
				t.Errorf("stdout %q, stderr %q; want stdout %q", stdout.String(), stderr.String(), wantOut)
			}
			if strings.Contains(stdout.String(), "secret-token") {
				t.Error("user data printed")
			}
			md, err := configdrive.Load(context.Background(), configdrive.Options{Drive: img, RunDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, k := range md.PublicKeys {
				keys = append(keys, k.Line)
			}
			if diff := cmp.Diff(append(lines1, lines2...), keys); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if md.UUID != "129714139" || md.Hostname != "web-1" || md.DigitalOcean == nil || md.DigitalOcean.DropletID != "129714139" {
				t.Errorf("uuid %q hostname %q digitalocean %+v", md.UUID, md.Hostname, md.DigitalOcean)
			}
			if diff := cmp.Diff(map[string]string{"role": "web", "tier": "a=b"}, md.Meta); diff != "" {
				t.Errorf("meta (-want +got):\n%s", diff)
			}
			if string(md.UserData) != "secret-token\n" {
				t.Errorf("user data %q", []byte(md.UserData))
			}
			if md.Network == nil || len(md.Network.Networks) != 1 || md.Network.Networks[0].IPAddress != "10.0.2.15" {
				t.Errorf("network %+v", md.Network)
			}
		})
	}
}

func TestMkdriveDefaults(t *testing.T) {
	for _, tc := range []struct {
		args []string
		uuid string // a regexp
	}{
		{nil, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`},
		{[]string{"--digitalocean"}, `^[1-9][0-9]{8}$`},
	} {
		img := filepath.Join(t.TempDir(), "drive.iso")
		var stdout, stderr bytes.Buffer
		if code := cmdMkdrive(append([]string{"-o", img}, tc.args...), &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, stderr.String())
		}
		md, err := configdrive.Load(context.Background(), configdrive.Options{Drive: img, RunDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(tc.uuid).MatchString(md.UUID) || len(md.PublicKeys) != 0 || md.Hostname != "" {
			t.Errorf("%v: uuid %q, %d keys, hostname %q", tc.args, md.UUID, len(md.PublicKeys), md.Hostname)
		}
		if (md.DigitalOcean != nil) != (len(tc.args) > 0) {
			t.Errorf("%v: digitalocean metadata %+v", tc.args, md.DigitalOcean)
		}
	}
}

func TestMkdriveErrors(t *testing.T) {
	dir := t.TempDir()
	good, _ := keyFile(t, dir, "ed25519")
	bad := filepath.Join(dir, "bad.keys")
	badNet := filepath.Join(dir, "bad.json")
	for p, b := range map[string]string{bad: "# seed key, cut short\nssh-rsa AAAA...\n", badNet: `{"links": [`} {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "drive.iso")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // a regexp on stderr's first line
	}{
		{"no -o", nil, 2, `^notos-agent mkdrive: -o FILE is required$`},
		{"bad format", []string{"-o", out, "--format", "ext4"}, 2, `^notos-agent mkdrive: --format "ext4": want iso or vfat$`},
		{"stray argument", []string{"-o", out, "extra"}, 2, `^notos-agent mkdrive: unexpected argument "extra"$`},
		{"meta without =", []string{"-o", out, "--meta", "role"}, 2, `^notos-agent mkdrive: --meta "role": want KEY=VALUE$`},
		{"meta twice", []string{"-o", out, "--meta", "a=1", "--meta", "a=2"}, 2, `^notos-agent mkdrive: --meta "a=2": key "a" given twice$`},
		{"unknown flag", []string{"-o", out, "--nope"}, 2, `^flag provided but not defined: -nope$`},
		{"invalid key", []string{"-o", out, "--key", good, "--key", bad}, 1, `^notos-agent: mkdrive: ` + regexp.QuoteMeta(bad) + `:2: parse SSH public key: `},
		{"missing key file", []string{"-o", out, "--key", filepath.Join(dir, "none")}, 1, `^notos-agent: mkdrive: read key file: open .*/none: no such file or directory$`},
		{"bad network data", []string{"-o", out, "--network-data", badNet}, 1, `^notos-agent: mkdrive: ` + regexp.QuoteMeta(badNet) + `: not a JSON object: `},
		{"missing user data", []string{"-o", out, "--user-data", filepath.Join(dir, "none")}, 1, `^notos-agent: mkdrive: read user data: open .*/none: `},
		{"droplet id not a number", []string{"-o", out, "--digitalocean", "--uuid", "abc"}, 1, `^notos-agent: mkdrive: build digitalocean_meta_data.json: uuid "abc" is not a droplet id`},
		{"missing directory", []string{"-o", filepath.Join(dir, "no", "drive.iso")}, 1, `^notos-agent: mkdrive: create temporary file in .*/no: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cmdMkdrive(tc.args, &stdout, &stderr)
			first, _, _ := strings.Cut(stderr.String(), "\n")
			if code != tc.code || !regexp.MustCompile(tc.want).MatchString(first) {
				t.Errorf("exit %d, stderr %q; want exit %d and a first line matching %s", code, stderr.String(), tc.code, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after failed runs: %v", out, err)
	}
}

func TestMkdriveHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"notos-agent", "mkdrive", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Usage: notos-agent mkdrive -o FILE [--format iso|vfat] [--key FILE]...", "  -digitalocean\n", "  -network-data FILE\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestShowAndKeysReadWhatMkdriveWrote: the commands a user runs on a drive
// see what mkdrive wrote: show --json reports it, keys installs its keys.
func TestShowAndKeysReadWhatMkdriveWrote(t *testing.T) {
	dir := t.TempDir()
	kf, lines := keyFile(t, dir, "ed25519", "rsa")
	for _, format := range []string{"iso", "vfat"} {
		t.Run(format, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "drive")
			var stdout, stderr bytes.Buffer
			if code := cmdMkdrive([]string{"-o", img, "--format", format, "--key", kf, "--hostname", "web-1", "--uuid", "129714139", "--digitalocean"}, &stdout, &stderr); code != 0 {
				t.Fatalf("mkdrive: exit %d: %s", code, stderr.String())
			}

			stdout.Reset()
			if code := dispatch([]string{"notos-agent", "show", "--drive", img, "--json"}, &stdout, &stderr); code != 0 {
				t.Fatalf("show: exit %d: %s", code, stderr.String())
			}
			var got struct {
				Source     string   `json:"source"`
				FSType     string   `json:"fstype"`
				Version    string   `json:"version"`
				InstanceID string   `json:"instance_id"`
				Hostname   string   `json:"hostname"`
				PublicKeys []string `json:"public_keys"`
				UserData   string   `json:"user_data"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("show --json: %v\n%s", err, stdout.Bytes())
			}
			want := got
			want.Source, want.Version, want.InstanceID, want.Hostname, want.PublicKeys, want.UserData = img, "latest", "129714139", "web-1", lines, "absent"
			want.FSType = map[string]string{"iso": "iso9660", "vfat": "vfat"}[format]
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("show --json (-want +got):\n%s", diff)
			}

			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout.Reset()
			if code := dispatch([]string{"notos-agent", "keys", "--drive", img, "--root", root}, &stdout, &stderr); code != 0 {
				t.Fatalf("keys: exit %d: %s", code, stderr.String())
			}
			b, err := os.ReadFile(filepath.Join(root, "etc/ssh/authorized_keys.d/root"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(strings.Join(lines, "\n")+"\n", string(b)); diff != "" {
				t.Errorf("installed authorized_keys.d/root (-want +got):\n%s", diff)
			}
		})
	}
}
