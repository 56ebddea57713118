package mkdrive

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

// TestLoadReadsWhatWriteWrote: our own reader finds each image by its label
// (configdrive.Probe, what the drive scan uses) and configdrive.Load reads
// exactly the keys, hostname, ids and network that were written.
func TestLoadReadsWhatWriteWrote(t *testing.T) {
	s := testSpec(t)
	files, err := Files(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		format        Format
		fstype, label string
	}{{ISO, "iso9660", ISOLabel}, {VFAT, "vfat", VFATLabel}} {
		format := tc.format
		t.Run(string(format), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "drive")
			if err := Write(img, format, files); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			fstype, label, err := configdrive.Probe(f)
			f.Close()
			if err != nil || fstype != tc.fstype || label != tc.label {
				t.Errorf("Probe: %q %q %v; want %q %q", fstype, label, err, tc.fstype, tc.label)
			}
			md, err := configdrive.Load(context.Background(), configdrive.Options{Drive: img, RunDir: t.TempDir()})
			if err != nil {
				t.Fatalf("Load %s: %v", img, err)
			}
			type view struct {
				UUID, InstanceID, Hostname, Name, Zone, Version, DropletID, Region string
				Keys                                                               []string
				Meta                                                               map[string]string
				UserData                                                           string
				DHCP                                                               bool
				Public                                                             []configdrive.DOInterface
				Nameservers                                                        []string
				Warnings                                                           []string
			}
			got := view{
				UUID: md.UUID, InstanceID: md.InstanceID, Hostname: md.Hostname, Name: md.Name,
				Zone: md.AvailabilityZone, Version: md.Version, Meta: md.Meta,
				UserData: string(md.UserData), Warnings: md.Warnings,
			}
			for _, k := range md.PublicKeys {
				got.Keys = append(got.Keys, k.Line)
			}
			if md.DigitalOcean != nil {
				do := md.DigitalOcean
				got.DropletID, got.Region, got.DHCP, got.Public, got.Nameservers = do.DropletID, do.Region, do.DHCPEnabled, do.Public, do.Nameservers
			}
			want := view{
				UUID: s.UUID, InstanceID: s.UUID, Hostname: s.Hostname, Name: s.Hostname,
				Zone: "local", Version: "latest", DropletID: s.UUID, Region: "local",
				Keys: s.PublicKeys, Meta: s.Meta, UserData: string(s.UserData), DHCP: false,
				Public: []configdrive.DOInterface{{MAC: "52:54:00:12:34:56", Type: "public",
					IPv4: &configdrive.DOIPv4{Address: "10.0.2.15", Netmask: "255.255.255.0", Gateway: "10.0.2.2"}}},
				Nameservers: []string{"10.0.2.3"},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseOnFilesReadByRealTools: the files as isoinfo (through either
// tree) and mtype read them off the images parse, with configdrive.Parse,
// to exactly the keys, hostname and uuid that were asked for.
func TestParseOnFilesReadByRealTools(t *testing.T) {
	bins := testenv.RequireCommands(t, "isoinfo", "mtype")
	s := testSpec(t)
	files, err := Files(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	iso, img := filepath.Join(dir, "drive.iso"), filepath.Join(dir, "drive.img")
	if err := Write(iso, ISO, files); err != nil {
		t.Fatal(err)
	}
	if err := Write(img, VFAT, files); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		fstype string
		read   func(p string) []byte
	}{
		{"isoinfo -R", "iso9660", func(p string) []byte { return run(t, bins["isoinfo"], "-R", "-x", "/"+p, "-i", iso) }},
		{"isoinfo -J", "iso9660", func(p string) []byte { return run(t, bins["isoinfo"], "-J", "-x", "/"+p, "-i", iso) }},
		{"mtype", "vfat", func(p string) []byte { return run(t, bins["mtype"], "-i", img, "::/"+p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, err := configdrive.Parse(configdrive.Files{
				Source:       tc.name,
				FSType:       tc.fstype,
				Version:      "latest",
				MetaData:     tc.read("openstack/latest/meta_data.json"),
				NetworkData:  tc.read("openstack/latest/network_data.json"),
				VendorData:   tc.read("openstack/latest/vendor_data.json"),
				UserData:     tc.read("openstack/latest/user_data"),
				DigitalOcean: tc.read("digitalocean_meta_data.json"),
			})
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, k := range md.PublicKeys {
				keys = append(keys, k.Line)
			}
			got := []any{md.UUID, md.Hostname, keys, md.Meta, string(md.UserData), md.Warnings}
			want := []any{s.UUID, s.Hostname, s.PublicKeys, s.Meta, string(s.UserData), []string(nil)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("uuid, hostname, keys, meta, user data, warnings (-want +got):\n%s", diff)
			}
			if md.DigitalOcean == nil || md.DigitalOcean.DropletID != s.UUID || md.Network == nil || len(md.Network.Networks) != 1 {
				t.Errorf("digitalocean %+v, network %+v", md.DigitalOcean, md.Network)
			}
		})
	}
}

func TestMake(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := sshKeygen(t, "ed25519", "a@x"), sshKeygen(t, "ed25519", "b@x")
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte(k1+"\n"+k2+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "drive.iso")
	s, err := Make(Request{Output: out, Format: ISO, KeyFiles: []string{keys}, Spec: Spec{Hostname: "h", DigitalOcean: true}})
	if err != nil {
		t.Fatal(err)
	}
	md, err := configdrive.Load(context.Background(), configdrive.Options{Drive: out, RunDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if md.UUID != s.UUID || len(s.UUID) != 9 || md.DigitalOcean == nil || md.DigitalOcean.DropletID != s.UUID {
		t.Errorf("uuid: returned %q, read %q, droplet %+v", s.UUID, md.UUID, md.DigitalOcean)
	}
	if diff := cmp.Diff([]string{k1, k2}, s.PublicKeys); diff != "" {
		t.Errorf("returned keys (-want +got):\n%s", diff)
	}

	missing := filepath.Join(dir, "none.iso")
	if _, err := Make(Request{Output: missing, Format: ISO, UserDataFile: filepath.Join(dir, "nope"), Spec: Spec{UUID: "u"}}); err == nil || !strings.HasPrefix(err.Error(), "read user data: open ") {
		t.Errorf("Make with a missing user data file: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("%s written after a failure: %v", missing, err)
	}
}
