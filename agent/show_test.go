package agent

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/configdrive"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/show")

// showCases are drives made of shared fixtures (or testdata/do-drive),
// named by the golden files they produce.
var showCases = []struct {
	name                  string
	meta, network, do, ud string // fixture paths under ../../shared/fixtures
}{
	{name: "kubevirt", meta: "afterburn/kubevirt-meta_data-underscore-hostname.json",
		network: "afterburn/kubevirt-network_data-static-dualstack-dhcp-ipv6dns.json"},
	{name: "ibmcloud", meta: "afterburn/ibmcloud-classic-vfat-meta_data.json",
		network: "afterburn/ibmcloud-classic-vfat-network_data-static-routes.json"},
	{name: "talos-bond", meta: "talos/openstack-meta_data-empty-keys.json",
		network: "talos/openstack-network_data-bond-vlan-ipv6-services.json"},
	{name: "seed-truncated-key", meta: "not-os/digitalocean-configdrive-openstack-latest-meta_data.json",
		do: "cloud-init/digitalocean-droplet-metadata-v1.json"},
}

func TestShowGolden(t *testing.T) {
	reports := map[string]*configdrive.Metadata{"do-drive": parseDrive(t, doDrive)}
	for _, c := range showCases {
		read := func(name string) []byte {
			if name == "" {
				return nil
			}
			b, err := os.ReadFile(filepath.Join("../../shared/fixtures", name))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		md, err := configdrive.Parse(configdrive.Files{Source: "/dev/vdb", FSType: "iso9660", Version: "latest",
			MetaData: read(c.meta), NetworkData: read(c.network), DigitalOcean: read(c.do)})
		if err != nil {
			t.Fatalf("%s: Parse: %v", c.name, err)
		}
		reports[c.name] = md
	}
	for name, md := range reports {
		r := NewShowReport(md)
		var text, js bytes.Buffer
		if err := r.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata/show", name+".txt"), text.Bytes())
		golden(t, filepath.Join("testdata/show", name+".json"), js.Bytes())
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// TestShowJSONFields: the fields other tools rely on.
func TestShowJSONFields(t *testing.T) {
	md := parseDrive(t, doDrive)
	var b bytes.Buffer
	if err := NewShowReport(md).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Source     string   `json:"source"`
		Version    string   `json:"version"`
		InstanceID string   `json:"instance_id"`
		Hostname   string   `json:"hostname"`
		PublicKeys []string `json:"public_keys"`
		AdminPass  string   `json:"admin_pass"`
		UserData   string   `json:"user_data"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := got
	want.Source, want.Version, want.InstanceID, want.Hostname = doDrive, "latest", "48151623", "web-1"
	want.PublicKeys = strings.Split(strings.TrimSuffix(wantKeysFile(md), "\n"), "\n")
	want.AdminPass, want.UserData = "present", "absent"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("show --json (-want +got):\n%s", diff)
	}
}

// TestShowNoSecrets: admin_pass and user_data never appear, in either form.
func TestShowNoSecrets(t *testing.T) {
	const sentinel = "S3NT1NEL-never-print-me"
	meta := `{"uuid": "u-1", "hostname": "h", "admin_pass": "` + sentinel + `",
		"meta": {"password": "` + sentinel + `"},
		"public_keys": {"0": "not a key"}}`
	md, err := configdrive.Parse(configdrive.Files{MetaData: []byte(meta), UserData: []byte("#cloud-config\npassword: " + sentinel + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	r := NewShowReport(md)
	var text, js bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), js.String()} {
		if strings.Contains(out, sentinel) {
			t.Errorf("show printed a secret:\n%s", out)
		}
	}
	if r.AdminPass != "present" || r.UserData != "present" {
		t.Errorf("admin_pass %q, user_data %q; want both present", r.AdminPass, r.UserData)
	}
}
