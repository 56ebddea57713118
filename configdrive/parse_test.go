package configdrive

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// fixturesDir holds the shared third-party fixtures (FIXTURES.md).
const fixturesDir = "../../shared/fixtures"

// fixtureFiles returns every JSON fixture, relative to fixturesDir.
func fixtureFiles(t testing.TB) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(fixturesDir, "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("no fixtures under %s", fixturesDir)
	}
	for i, n := range names {
		names[i], _ = filepath.Rel(fixturesDir, n)
	}
	return names
}

// fixtureRole puts a fixture where it belongs in Files. Files that are not
// meta_data.json get a minimal one, as a drive always has it.
func fixtureRole(name string, data []byte) Files {
	base := filepath.Base(name)
	switch {
	case strings.Contains(base, "network_data"):
		return Files{MetaData: []byte(`{"uuid":"fixture"}`), NetworkData: data}
	case strings.HasPrefix(base, "digitalocean-") && !strings.Contains(base, "configdrive"):
		return Files{MetaData: []byte(`{}`), DigitalOcean: data}
	default:
		return Files{MetaData: data}
	}
}

// golden is what a golden file holds: Metadata as JSON (secrets show as
// present/absent) plus the fields JSON leaves out.
type golden struct {
	Metadata      *Metadata `json:"metadata"`
	RandomSeedLen int       `json:"random_seed_len"`
	VendorDataLen int       `json:"vendor_data_len"`
}

func TestParseFixturesGolden(t *testing.T) {
	for _, name := range fixtureFiles(t) {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(fixturesDir, name))
			if err != nil {
				t.Fatal(err)
			}
			md, err := Parse(fixtureRole(name, data))
			if err != nil {
				t.Fatalf("Parse(%s): %v", name, err)
			}
			got, err := json.MarshalIndent(golden{md, len(md.RandomSeed), len(md.VendorData)}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "golden", strings.TrimSuffix(name, ".json")+".golden.json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("Parse(%s) differs from %s (-want +got):\n%s", name, path, diff)
			}
		})
	}
}

// keyNames lists the names of the keys that would be installed.
func keyNames(md *Metadata) []string {
	out := []string{}
	for _, k := range md.PublicKeys {
		out = append(out, k.Name)
	}
	return out
}

func skippedNames(md *Metadata) []string {
	out := []string{}
	for _, k := range md.SkippedKeys {
		out = append(out, k.Name)
	}
	return out
}

// TestParseFixtureQuirks asserts, one by one, the quirks FIXTURES.md lists;
// the golden files hold the rest.
func TestParseFixtureQuirks(t *testing.T) {
	type want struct {
		keys       []string
		skipped    []string
		instanceID string
		hostname   string
		seedLen    int
		warnings   int
	}
	tests := []struct {
		fixture string
		want    want
		check   func(t *testing.T, md *Metadata)
	}{
		{
			// random_seed has a literal space: it must decode anyway.
			fixture: "afterburn/openstack-meta_data-admin_pass-random_seed-keymap.json",
			want:    want{keys: []string{"mykey"}, skipped: []string{}, instanceID: "b3c7f4de-da0b-44ae-a42c-fa3806b61d7f", hostname: "abai-fcos-afterburn-test", seedLen: 512},
			check: func(t *testing.T, md *Metadata) {
				if md.AdminPass.String() != "present" {
					t.Errorf("AdminPass = %v, want present", md.AdminPass)
				}
			},
		},
		{
			fixture: "afterburn/openstack-meta_data-uuid-only.json",
			want:    want{keys: []string{}, skipped: []string{}, instanceID: "b3f43d9c-9198-4cd4-ac9f-bed14960794b"},
		},
		{
			// The same key in public_keys and in keys: installed once.
			fixture: "afterburn/openstack-meta_data-2012-08-10-keys-list.json",
			want:    want{keys: []string{"pprinett"}, skipped: []string{}, instanceID: "99dcf33b-6eb5-4acf-9abb-d81723e0c949", hostname: "mule"},
		},
		{
			// crypt_key is an ssh-rsa string but not a login key.
			fixture: "afterburn/ibmcloud-classic-vfat-meta_data.json",
			want:    want{keys: []string{"1602320"}, skipped: []string{}, instanceID: "3c9085db-3eba-4ef2-9d97-d3ffcff6fffe", hostname: "rh-lbruno-classic01.example.cloud", seedLen: 4},
			check: func(t *testing.T, md *Metadata) {
				for _, k := range md.PublicKeys {
					if strings.Contains(k.Name, "crypt") {
						t.Errorf("crypt_key installed as %q", k.Name)
					}
				}
			},
		},
		{
			// The underscore stays: making a valid hostname is the installer's job.
			fixture: "afterburn/kubevirt-meta_data-underscore-hostname.json",
			want:    want{keys: []string{"mykey"}, skipped: []string{}, instanceID: "5d307ca9-b3ef-428c-8861-06e72d69f223", hostname: "test_instance-kubevirt.foo.cloud"},
		},
		{
			fixture: "talos/openstack-meta_data-empty-keys.json",
			want:    want{keys: []string{}, skipped: []string{}, instanceID: "39073b0a-1234-1234-1234-5e76a4bd64b2", hostname: "talos"},
		},
		{
			// The notes' author cut the key short: skipped with a warning.
			fixture: "not-os/digitalocean-configdrive-openstack-latest-meta_data.json",
			want:    want{keys: []string{}, skipped: []string{"0"}, instanceID: "129714139", hostname: "not-os-config-2.qcow2.s-1vcpu-1gb-ams3-01", warnings: 1},
		},
		{
			// droplet_id as a string, public_keys "".
			fixture: "cloud-init/digitalocean-droplet-metadata-v1.json",
			want:    want{keys: []string{}, skipped: []string{}, instanceID: "22532410", hostname: "utl-96268"},
		},
		{
			// droplet_id as an int, public_keys a list (holding a cut key).
			fixture: "cloud-init/digitalocean-droplet-metadata-vendor-multipart.json",
			want:    want{keys: []string{}, skipped: []string{"digitalocean/0"}, instanceID: "27223699", hostname: "smtest1", warnings: 1},
		},
		{
			fixture: "talos/digitalocean-metadata-v1-droplet.json",
			want:    want{keys: []string{}, skipped: []string{}, instanceID: "320206672", hostname: "debian-s-1vcpu-512mb-10gb-ams3-01"},
			check: func(t *testing.T, md *Metadata) {
				if md.DigitalOcean == nil || md.DigitalOcean.DHCPEnabled {
					t.Errorf("DigitalOcean = %+v, want dhcp_enabled false", md.DigitalOcean)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(fixturesDir, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			md, err := Parse(fixtureRole(tt.fixture, data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := want{
				keys:       keyNames(md),
				skipped:    skippedNames(md),
				instanceID: md.InstanceID,
				hostname:   md.Hostname,
				seedLen:    len(md.RandomSeed),
				warnings:   len(md.Warnings),
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("Parse(%s) (-want +got):\n%s\nwarnings: %q", tt.fixture, diff, md.Warnings)
			}
			if tt.check != nil {
				tt.check(t, md)
			}
		})
	}
}

const (
	testKeyEd  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICSVdZ0r9ciKjC25CbcNMwCa54VJomzaK5Wd/lU3pU9I alice@laptop"
	testKeyRSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDhTWnGixLyyVb1ixshBuzX6qBd5a8uqHVZ86aGJyumeDnCn9U+IJh7NjuAXer7uFQEcdzNxDge7Y4MoZOvGYLaQyB8Apg/guu13pSf9wN/04v7u3kMXHbnrCFCG8Lw0kaAGc86IstmtUx6BsTp+WkG3u1n6v6ANI550hJwP0kfzt3fG4r+scrmWyb74NjDFjKP7sqiOHaE3kPaQRTh557rwQSpw1tS1s/C/76x2TvB1Qo2LLrdyNsCuU7FtZauPhs6DOUo9qpWrhwqaiWOGS05LGU+zcWkK45m5XwuilSwzYIPYUZ3wAuTg8VKQFMQsifPWZ+5fYGNfWlJ++az24Xd bob@workstation"
)

// TestParseKeyShapes covers each shape public_keys arrives in.
func TestParseKeyShapes(t *testing.T) {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	tests := []struct {
		name    string
		files   Files
		keys    []PublicKey
		skipped []string
	}{
		{
			name:  "map value with two lines and CRLF",
			files: Files{MetaData: []byte(`{"public_keys":{"k":` + q(testKeyEd+"\r\n"+testKeyRSA+"\r\n") + `}}`)},
			keys: []PublicKey{
				{Name: "k/0", Line: testKeyEd, Type: "ssh-ed25519"},
				{Name: "k/1", Line: testKeyRSA, Type: "ssh-rsa"},
			},
		},
		{
			name:  "map value a list",
			files: Files{MetaData: []byte(`{"public_keys":{"k":[` + q(testKeyEd) + `,` + q(testKeyRSA) + `]}}`)},
			keys: []PublicKey{
				{Name: "k/0", Line: testKeyEd, Type: "ssh-ed25519"},
				{Name: "k/1", Line: testKeyRSA, Type: "ssh-rsa"},
			},
		},
		{
			name:  "top-level list",
			files: Files{MetaData: []byte(`{"public_keys":[` + q(testKeyRSA) + `,` + q(testKeyEd) + `]}`)},
			keys: []PublicKey{
				{Name: "0", Line: testKeyRSA, Type: "ssh-rsa"},
				{Name: "1", Line: testKeyEd, Type: "ssh-ed25519"},
			},
		},
		{
			name:  "single string, extra spaces and a comment line",
			files: Files{MetaData: []byte(`{"public_keys":` + q("# mine\n  "+strings.Replace(testKeyEd, " ", "   ", 1)+"  \n") + `}`)},
			keys:  []PublicKey{{Name: "0", Line: testKeyEd, Type: "ssh-ed25519"}},
		},
		{
			name:    "invalid key skipped, valid kept",
			files:   Files{MetaData: []byte(`{"public_keys":{"bad":"ssh-rsa AAAA...","good":` + q(testKeyEd) + `}}`)},
			keys:    []PublicKey{{Name: "good", Line: testKeyEd, Type: "ssh-ed25519"}},
			skipped: []string{"bad"},
		},
		{
			name: "union of public_keys, keys[type=ssh] and DigitalOcean, deduplicated",
			files: Files{
				MetaData: []byte(`{"public_keys":{"a":` + q(testKeyEd) + `},"keys":[` +
					`{"name":"a","type":"ssh","data":` + q(testKeyEd+"\n") + `},` +
					`{"name":"x","type":"x509","data":"-----BEGIN CERTIFICATE-----"},` +
					`{"type":"ssh","data":` + q(testKeyRSA) + `}]}`),
				DigitalOcean: []byte(`{"droplet_id":1,"public_keys":[` + q(testKeyRSA) + `],"dotty_keys":[` + q(testKeyRSA) + `]}`),
			},
			keys: []PublicKey{
				{Name: "a", Line: testKeyEd, Type: "ssh-ed25519"},
				{Name: "keys/2", Line: testKeyRSA, Type: "ssh-rsa"},
			},
		},
		{
			name:  "byte order mark before the JSON",
			files: Files{MetaData: []byte("\xef\xbb\xbf" + `{"public_keys":{"a":` + q(testKeyEd) + `}}`)},
			keys:  []PublicKey{{Name: "a", Line: testKeyEd, Type: "ssh-ed25519"}},
		},
		{
			name:  "null values",
			files: Files{MetaData: []byte(`{"public_keys":{"a":null},"keys":null,"uuid":null,"launch_index":null}`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, err := Parse(tt.files)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := md.PublicKeys
			for i := range got {
				got[i].Fingerprint = ""
			}
			want := tt.keys
			if want == nil {
				want = []PublicKey{}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("PublicKeys (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.skipped, skippedNamesOrNil(md)); diff != "" {
				t.Errorf("SkippedKeys (-want +got):\n%s", diff)
			}
		})
	}
}

func skippedNamesOrNil(md *Metadata) []string {
	if len(md.SkippedKeys) == 0 {
		return nil
	}
	return skippedNames(md)
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   Files
		wantErr []string // substrings of the error
		is      error
	}{
		{"no meta_data.json", Files{}, []string{"meta_data.json"}, ErrNoMetaData},
		{"malformed meta_data.json", Files{MetaData: []byte(`{"uuid": "x",`)}, []string{"parse meta_data.json", "unexpected end"}, nil},
		{"not an object", Files{MetaData: []byte(`[1,2]`)}, []string{"meta_data.json", "array"}, nil},
		{"hostname a number", Files{MetaData: []byte(`{"hostname": 12}`)}, []string{"meta_data.json", "hostname", "number"}, nil},
		{"uuid an object", Files{MetaData: []byte(`{"uuid": {}}`)}, []string{"meta_data.json", "uuid", "object"}, nil},
		{"public_keys a number", Files{MetaData: []byte(`{"public_keys": 3}`)}, []string{"meta_data.json", "public_keys", "number"}, nil},
		{"public_keys value an object", Files{MetaData: []byte(`{"public_keys": {"a": {}}}`)}, []string{"meta_data.json", `public_keys["a"]`, "object"}, nil},
		{"keys not a list", Files{MetaData: []byte(`{"keys": "x"}`)}, []string{"meta_data.json", "keys", "string"}, nil},
		{"launch_index a word", Files{MetaData: []byte(`{"launch_index": "first"}`)}, []string{"meta_data.json", "launch_index"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, err := Parse(tt.files)
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", md)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

// TestParseOptionalFilesMalformed: a broken network_data.json or
// digitalocean_meta_data.json costs only its part; the keys still come.
func TestParseOptionalFilesMalformed(t *testing.T) {
	meta := []byte(`{"uuid":"u","public_keys":{"0":"` + testKeyEd + `"}}`)
	tests := []struct {
		name  string
		files Files
		warn  string
	}{
		{"network_data.json truncated", Files{MetaData: meta, NetworkData: []byte(`{"links":[`)}, "network_data.json"},
		{"network_data.json mtu a word", Files{MetaData: meta, NetworkData: []byte(`{"links":[{"mtu":"big"}]}`)}, "links.mtu"},
		{"digitalocean_meta_data.json not JSON", Files{MetaData: meta, DigitalOcean: []byte(`<html>`)}, "digitalocean_meta_data.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, err := Parse(tt.files)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff([]string{"0"}, keyNames(md)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if md.Network != nil || md.DigitalOcean != nil {
				t.Errorf("Network = %v, DigitalOcean = %v, want both nil", md.Network, md.DigitalOcean)
			}
			if len(md.Warnings) != 1 || !strings.Contains(md.Warnings[0], tt.warn) {
				t.Errorf("Warnings = %q, want one naming %q", md.Warnings, tt.warn)
			}
		})
	}
}

func TestParseRandomSeed(t *testing.T) {
	tests := []struct {
		seed    string
		want    []byte
		warning bool
	}{
		{"YWJjCg==", []byte("abc\n"), false},
		{"YWJj Cg==", []byte("abc\n"), false},
		{"YWJj\nCg==\n", []byte("abc\n"), false},
		{"YWJjCg", []byte("abc\n"), false}, // unpadded
		{"not base64!", nil, true},
	}
	for _, tt := range tests {
		md, err := Parse(Files{MetaData: []byte(`{"random_seed":` + fmt.Sprintf("%q", tt.seed) + `}`)})
		if err != nil {
			t.Fatalf("Parse(random_seed %q): %v", tt.seed, err)
		}
		if !bytes.Equal(md.RandomSeed, tt.want) || (len(md.Warnings) > 0) != tt.warning {
			t.Errorf("random_seed %q: got %q, warnings %q; want %q, warning %v", tt.seed, md.RandomSeed, md.Warnings, tt.want, tt.warning)
		}
	}
}

// TestParseSecretsNeverShown: admin_pass and user_data must not reach
// JSON output, %v, %+v or %#v of Metadata.
func TestParseSecretsNeverShown(t *testing.T) {
	const pass, user = "s3cr3t-admin-pass", "#!/bin/sh\necho user-data-secret"
	md, err := Parse(Files{
		MetaData: []byte(`{"admin_pass":"` + pass + `","public_keys":{"0":"ssh-rsa AAAA` + pass + `"}}`),
		UserData: []byte(user),
	})
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(j), fmt.Sprintf("%v", md), fmt.Sprintf("%+v", *md), fmt.Sprintf("%#v", *md), strings.Join(md.Warnings, "\n")} {
		if strings.Contains(out, pass) || strings.Contains(out, "user-data-secret") {
			t.Errorf("a secret leaked into output:\n%s", out)
		}
	}
	if md.AdminPass.String() != "present" || md.UserData.String() != "present" {
		t.Errorf("AdminPass %v, UserData %v, want both present", md.AdminPass, md.UserData)
	}
}

// TestParseLiberalTypes: values sent with another JSON type than the
// usual one, as clouds do, are taken rather than refused.
func TestParseLiberalTypes(t *testing.T) {
	md, err := Parse(Files{
		MetaData:     []byte(`{"uuid": 129714139, "admin_pass": 12345678, "launch_index": "2", "meta": {"n": 1, "s": "x", "o": {"a": true}}}`),
		NetworkData:  []byte(`{"links": [{"id": "l", "mtu": "1500", "vlan_id": "7", "bond_mode": 4, "type": null, "ethernet_mac_address": "AA:BB:CC:DD:EE:FF"}], "networks": [{"netmask": 24}]}`),
		DigitalOcean: []byte(`{"droplet_id": "42", "user_data": {"not": "a string"}, "interfaces": {"public": [{"mac": "AA:00:00:00:00:01", "ipv6": {"cidr": "64"}}]}}`),
	})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	type summary struct {
		UUID, AdminPass string
		LaunchIndex     int
		Meta            map[string]string
		Link            Link
		Netmask         string
		DropletID       string
		HasUserData     bool
		DOMAC           string
		DOCIDR          int
	}
	got := summary{
		UUID: md.UUID, AdminPass: md.AdminPass.String(), LaunchIndex: md.LaunchIndex, Meta: md.Meta,
		Link: md.Network.Links[0], Netmask: md.Network.Networks[0].Netmask,
		DropletID: md.DigitalOcean.DropletID, HasUserData: md.DigitalOcean.HasUserData,
		DOMAC: md.DigitalOcean.Public[0].MAC, DOCIDR: md.DigitalOcean.Public[0].IPv6.CIDR,
	}
	want := summary{
		UUID: "129714139", AdminPass: "present", LaunchIndex: 2,
		Meta:    map[string]string{"n": "1", "s": "x", "o": `{"a": true}`},
		Link:    Link{ID: "l", MTU: 1500, VLANID: 7, BondMode: "4", MAC: "aa:bb:cc:dd:ee:ff"},
		Netmask: "24", DropletID: "42", HasUserData: true,
		DOMAC: "aa:00:00:00:00:01", DOCIDR: 64,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if len(md.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none", md.Warnings)
	}
}
