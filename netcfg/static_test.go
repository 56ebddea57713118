package netcfg

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/configdrive"
)

// fixturesDir holds the shared third-party fixtures (FIXTURES.md).
const fixturesDir = "../../shared/fixtures"

var allModes = []Mode{ModeAuto, ModeDHCP, ModeStatic, ModeOff}

// networkFixtures returns every fixture that describes a network, by kind:
// network_data.json files and DigitalOcean metadata.
func networkFixtures(t *testing.T) map[string]configdrive.Files {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(fixturesDir, "*", "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures under %s (%v)", fixturesDir, err)
	}
	out := map[string]configdrive.Files{}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f := configdrive.Files{MetaData: []byte("{}")}
		base := filepath.Base(name)
		switch {
		case strings.Contains(base, "network_data"):
			f.NetworkData = b
		case strings.HasPrefix(base, "digitalocean-droplet-") || strings.HasPrefix(base, "digitalocean-metadata-"):
			f.DigitalOcean = b
		default:
			continue // meta_data.json: no network
		}
		out[filepath.Base(filepath.Dir(name))+"/"+strings.TrimSuffix(base, ".json")] = f
	}
	return out
}

// TestPlanFromMetadataGolden builds the plan of every network fixture in
// every mode and compares it with testdata/static/<fixture>.json.
func TestPlanFromMetadataGolden(t *testing.T) {
	fixtures := networkFixtures(t)
	// FIXTURES.md lists 7 network_data.json files and 3 DigitalOcean
	// metadata files; a fixture added later must not go untested.
	if len(fixtures) != 10 {
		t.Errorf("found %d network fixtures, want 10: %v", len(fixtures), keys(fixtures))
	}
	// Both files at once: DigitalOcean's wins.
	both := fixtures["talos/digitalocean-metadata-v1-droplet"]
	both.NetworkData = fixtures["talos/openstack-network_data-bond-vlan-ipv6-services"].NetworkData
	fixtures["combined/talos-digitalocean-and-network_data"] = both

	for name, f := range fixtures {
		t.Run(name, func(t *testing.T) {
			md, err := configdrive.Parse(f)
			if err != nil {
				t.Fatalf("configdrive.Parse: %v", err)
			}
			if md.Network == nil && md.DigitalOcean == nil {
				t.Fatalf("configdrive.Parse found no network: %v", md.Warnings)
			}
			got := map[Mode]Plan{}
			for _, m := range allModes {
				p, err := PlanFromMetadata(md, m)
				if err != nil {
					t.Fatalf("PlanFromMetadata(%s): %v", m, err)
				}
				got[m] = p
			}
			compareGolden(t, filepath.Join("testdata", "static", strings.ReplaceAll(name, "/", "_")+".json"), got)
		})
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// compareGolden compares v, as indented JSON, with the golden file; -update
// rewrites it.
func compareGolden(t *testing.T, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
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
		t.Fatalf("read golden file (run go test -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

func TestParseMask(t *testing.T) {
	tests := []struct {
		in      string
		is4     bool
		want    int
		wantErr bool
	}{
		{"255.255.255.0", true, 24, false},
		{"255.255.255.192", true, 26, false},
		{"0.0.0.0", true, 0, false},
		{"255.255.255.255", true, 32, false},
		{"24", true, 24, false},
		{"/20", true, 20, false},
		{"33", true, 0, true},
		{"255.0.255.0", true, 0, true}, // not contiguous
		{"ffff:ffff:ffff:ffff::", false, 64, false},
		{"ffff:ffff:ffff:ffc0::", false, 58, false},
		{"::", false, 0, false},
		{"64", false, 64, false},
		{"255.255.255.0", false, 0, true}, // wrong family
		{"ffff::ffff", false, 0, true},
		{"mask", true, 0, true},
	}
	for _, tt := range tests {
		got, err := parseMask(tt.in, tt.is4)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseMask(%q, %v) = %d, %v; want %d, error %v", tt.in, tt.is4, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "dhcp": ModeDHCP, "static": ModeStatic, "off": ModeOff} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseMode("DHCP"); err == nil {
		t.Error(`ParseMode("DHCP") succeeded, want an error`)
	}
	if _, err := PlanFromMetadata(&configdrive.Metadata{}, "bogus"); err == nil {
		t.Error("PlanFromMetadata with mode bogus succeeded, want an error")
	}
}

// TestPlanFromMetadataCases covers what no fixture has.
func TestPlanFromMetadataCases(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	tests := []struct {
		name string
		nd   configdrive.NetworkData
		want Plan
	}{{
		name: "name only, gateway 0.0.0.0 is on-link, bad items skipped",
		nd: configdrive.NetworkData{
			Links: []configdrive.Link{{ID: "l0", Name: "ens3", Type: "macvtap", MTU: 1400}, {ID: "l1", Type: "phy"}},
			Networks: []configdrive.Network{
				{ID: "n0", Type: "ipv4", Link: "l0", IPAddress: "192.0.2.5/24", Routes: []configdrive.Route{
					{Network: "198.51.100.0", Netmask: "255.255.255.0", Gateway: "0.0.0.0"},
					{Network: "203.0.113.0", Netmask: "255.0.255.0", Gateway: "192.0.2.1"},
					{Network: "0.0.0.0", Netmask: "0", Gateway: "198.51.100.1"},
				}},
				{ID: "n1", Type: "ipv4", Link: "l0", IPAddress: "192.0.2.6"},
				{ID: "n2", Type: "ipv4", Link: "nowhere", IPAddress: "192.0.2.7/24"},
				{ID: "n3", Type: "ipv6", Link: "l0", IPAddress: "192.0.2.8/24"},
				{ID: "n4", Type: "ipv4", Link: "l0", IPAddress: "192.0.2.9", Netmask: "255.255.255.0", DNSNameservers: []string{"192.0.2.53", "not an address"}},
				{ID: "n5", Type: "ipv6", Link: "l0", IPAddress: "2001:db8::5", Netmask: "64", Routes: []configdrive.Route{
					{Network: "::", Netmask: "::", Gateway: "fe80::1"},
				}},
			},
		},
		want: Plan{
			Links: []LinkPlan{{
				Name: "ens3", Method: MethodStatic, MTU: 1400, Source: SourceNetworkData,
				Addrs: []Addr{{Prefix: pfx("192.0.2.5/24")}, {Prefix: pfx("192.0.2.9/24")}, {Prefix: pfx("2001:db8::5/64")}},
				Routes: []Route{
					{Dst: pfx("198.51.100.0/24")},
					// 198.51.100.1 is reached by the on-link route above: no host route.
					{Dst: pfx("0.0.0.0/0"), Gateway: addr("198.51.100.1")},
					// A link-local router is always on the link: no host route.
					{Dst: pfx("::/0"), Gateway: addr("fe80::1")},
				},
				DNS: DNS{Servers: []netip.Addr{addr("192.0.2.53")}},
			}},
			DNS: DNS{Servers: []netip.Addr{addr("192.0.2.53")}},
			Warnings: []string{
				`link l0: unknown type "macvtap": treated as a physical link`,
				"link l1: neither a MAC address nor a name: not configured",
				`network n0: route to 203.0.113.0: netmask "255.0.255.0" is not contiguous: ignored`,
				`network n1: address "192.0.2.6" has no netmask: not configured`,
				`network n2: link "nowhere" is not in links: ignored`,
				"network n3: type ipv6 but address 192.0.2.8/24: not configured",
				`network n4: DNS server "not an address" is not a usable address: ignored`,
			},
		},
	}, {
		name: "default routes on two links and twice on one: metrics 0, 100, 200",
		nd: configdrive.NetworkData{
			Links: []configdrive.Link{{ID: "a", MAC: "02:00:00:00:00:0A"}, {ID: "b", MAC: "02:00:00:00:00:0b"}, {ID: "c", MAC: "02:00:00:00:00:0a"}},
			Networks: []configdrive.Network{
				{ID: "na", Type: "ipv4", Link: "a", IPAddress: "192.0.2.5", Netmask: "24", Gateway: "192.0.2.1"},
				{ID: "nb", Type: "ipv4", Link: "b", IPAddress: "198.51.100.5", Netmask: "24", Gateway: "198.51.100.9", Routes: []configdrive.Route{
					{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: "198.51.100.1"},
					{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: "198.51.100.2"},
				}},
			},
		},
		want: Plan{
			Links: []LinkPlan{{
				MAC: "02:00:00:00:00:0a", Method: MethodStatic, Source: SourceNetworkData,
				Addrs:  []Addr{{Prefix: pfx("192.0.2.5/24")}},
				Routes: []Route{{Dst: pfx("0.0.0.0/0"), Gateway: addr("192.0.2.1")}},
			}, {
				MAC: "02:00:00:00:00:0b", Method: MethodStatic, Source: SourceNetworkData,
				Addrs: []Addr{{Prefix: pfx("198.51.100.5/24")}},
				// The network-level gateway is not used: the routes have a default.
				Routes: []Route{
					{Dst: pfx("0.0.0.0/0"), Gateway: addr("198.51.100.1"), Metric: 100},
					{Dst: pfx("0.0.0.0/0"), Gateway: addr("198.51.100.2"), Metric: 200},
				},
			}},
			Warnings: []string{"link c: MAC 02:00:00:00:00:0a already used by an earlier link: merged into it"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nd := tt.nd
			got, err := PlanFromMetadata(&configdrive.Metadata{Network: &nd}, ModeAuto)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, ipOpts); diff != "" {
				t.Errorf("PlanFromMetadata (-want +got):\n%s", diff)
			}
		})
	}
}
