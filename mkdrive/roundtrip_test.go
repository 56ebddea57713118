package mkdrive

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/configdrive"
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
