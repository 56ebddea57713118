package mkdrive

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

// sshKeygen makes a real key pair with ssh-keygen and returns the public
// key line.
func sshKeygen(t *testing.T, typ, comment string) string {
	t.Helper()
	bin := testenv.RequireCommands(t, "ssh-keygen")["ssh-keygen"]
	dir := t.TempDir()
	args := []string{"-q", "-t", typ, "-N", "", "-C", comment, "-f", filepath.Join(dir, "key")}
	if typ == "rsa" {
		args = append(args, "-b", "2048")
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestParseAuthorizedKeys(t *testing.T) {
	ed := sshKeygen(t, "ed25519", "alice@example")
	rsa := sshKeygen(t, "rsa", "bob@example")
	edNoComment := strings.Join(strings.Fields(ed)[:2], " ")

	ok := []struct {
		name string
		in   string
		want []string
	}{
		{"one key", ed + "\n", []string{ed}},
		{"two keys, comments, blanks, CRLF", "# admins\r\n\r\n" + ed + "\r\n  " + rsa + "  \n", []string{ed, rsa}},
		{"no comment, no final newline", edNoComment, []string{edNoComment}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAuthorizedKeys("keys.pub", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}

	bad := []struct {
		name string
		in   string
		want string // a regexp the error must match
	}{
		{"truncated key (the seed's ssh-rsa AAAA...)", ed + "\nssh-rsa AAAA...\n", `^keys\.pub:2: parse SSH public key: `},
		{"options", "# x\nrestrict,from=\"10.0.0.1\" " + ed + "\n", `^keys\.pub:2: key options "restrict,from=\\"10\.0\.0\.1\\"" cannot`},
		{"a private key", "-----BEGIN OPENSSH PRIVATE KEY-----\n", `^keys\.pub:1: parse SSH public key`},
		{"empty", "\n# nothing\n", `^keys\.pub: no SSH public key$`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAuthorizedKeys("keys.pub", []byte(tc.in))
			if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Errorf("error %v, want one matching %s", err, tc.want)
			}
		})
	}
}

func TestFilesLayout(t *testing.T) {
	files, err := Files(Spec{UUID: "u", DigitalOcean: false})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for p := range files {
		got = append(got, p)
	}
	sort.Strings(got)
	var want []string
	for _, v := range []string{"2012-08-10", "2015-10-16", "latest"} {
		for _, f := range []string{"meta_data.json", "network_data.json", "user_data", "vendor_data.json"} {
			want = append(want, "openstack/"+v+"/"+f)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	for _, v := range []string{"2012-08-10", "2015-10-16"} {
		for _, f := range []string{"meta_data.json", "network_data.json", "user_data", "vendor_data.json"} {
			if a, b := files["openstack/"+v+"/"+f], files["openstack/latest/"+f]; string(a) != string(b) {
				t.Errorf("openstack/%s/%s differs from latest's", v, f)
			}
		}
	}
	for p, want := range map[string]string{
		"openstack/latest/network_data.json": DefaultNetworkData,
		"openstack/latest/vendor_data.json":  "{}",
		"openstack/latest/user_data":         "",
	} {
		if got := string(files[p]); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

func TestFilesContent(t *testing.T) {
	keys := []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB1 a", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2 b"}
	network := []byte(`{"links":[{"id":"eth0","type":"phy","ethernet_mac_address":"52:54:00:12:34:56"}],"networks":[],"services":[]}`)
	s := Spec{
		UUID:         "129714139",
		Hostname:     "droplet-1",
		PublicKeys:   keys,
		Meta:         map[string]string{"role": "web"},
		NetworkData:  network,
		UserData:     []byte("#cloud-config\n"),
		DigitalOcean: true,
	}
	files, err := Files(s)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(files["openstack/latest/meta_data.json"], &meta); err != nil {
		t.Fatal(err)
	}
	wantMeta := map[string]any{
		"uuid":              "129714139",
		"instance_id":       "129714139",
		"hostname":          "droplet-1",
		"name":              "droplet-1",
		"availability_zone": "local",
		"launch_index":      0.0,
		"public_keys":       map[string]any{"0": keys[0], "1": keys[1]},
		"meta":              map[string]any{"role": "web"},
	}
	if diff := cmp.Diff(wantMeta, meta); diff != "" {
		t.Errorf("meta_data.json (-want +got):\n%s", diff)
	}
	var do map[string]any
	if err := json.Unmarshal(files["digitalocean_meta_data.json"], &do); err != nil {
		t.Fatal(err)
	}
	wantDO := map[string]any{
		"droplet_id":  129714139.0,
		"hostname":    "droplet-1",
		"user_data":   "#cloud-config\n",
		"vendor_data": "",
		"public_keys": []any{keys[0], keys[1]},
		"region":      "local",
		"interfaces":  map[string]any{"public": []any{}, "private": []any{}},
		"dns":         map[string]any{"nameservers": []any{}},
		"features":    map[string]any{"dhcp_enabled": true},
	}
	if diff := cmp.Diff(wantDO, do); diff != "" {
		t.Errorf("digitalocean_meta_data.json (-want +got):\n%s", diff)
	}
	if got := string(files["openstack/2015-10-16/network_data.json"]); got != string(network) {
		t.Errorf("network_data.json = %s, want the bytes given", got)
	}
}

func TestFilesDefaults(t *testing.T) {
	files, err := Files(Spec{UUID: "2c6a1b0e-3f55-4a43-9a8e-0d2f3c1b9e7a"})
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(files["openstack/latest/meta_data.json"], &meta); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"uuid": "2c6a1b0e-3f55-4a43-9a8e-0d2f3c1b9e7a", "availability_zone": "nova", "launch_index": 0.0}
	if diff := cmp.Diff(want, meta); diff != "" {
		t.Errorf("meta_data.json (-want +got):\n%s", diff)
	}
	if _, ok := files["digitalocean_meta_data.json"]; ok {
		t.Error("digitalocean_meta_data.json written without DigitalOcean")
	}
}

func TestFilesErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"no uuid", Spec{}, "build meta_data.json: uuid is empty"},
		{"uuid not a droplet id", Spec{UUID: "abc", DigitalOcean: true}, `build digitalocean_meta_data.json: uuid "abc" is not a droplet id`},
		{"network data not JSON", Spec{UUID: "u", NetworkData: []byte("{")}, "check network_data.json: not a JSON object: "},
		{"network data not an object", Spec{UUID: "u", NetworkData: []byte("[]")}, "check network_data.json: not a JSON object: "},
		{"user data over 1 MiB", Spec{UUID: "u", UserData: make([]byte, MaxFileSize+1)}, "build openstack/latest/user_data: 1048577 bytes, more than the 1048576 configdrive reads"},
		// Quotes double in JSON: 600 KiB of them make a 1.2 MB
		// digitalocean_meta_data.json.
		{"DigitalOcean user data over 1 MiB as JSON", Spec{UUID: "1", DigitalOcean: true, UserData: bytes.Repeat([]byte{'"'}, 600<<10)}, "build digitalocean_meta_data.json: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Files(tc.spec)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want one starting %q", err, tc.want)
			}
		})
	}
}

func TestRandomIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		u, err := RandomUUID()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(u) {
			t.Errorf("RandomUUID() = %q, not a version 4 UUID", u)
		}
		d, err := RandomDropletID()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[1-9][0-9]{8}$`).MatchString(d) {
			t.Errorf("RandomDropletID() = %q, want nine digits", d)
		}
		if seen[u] || seen[d] {
			t.Errorf("repeated id %q or %q", u, d)
		}
		seen[u], seen[d] = true, true
	}
}
