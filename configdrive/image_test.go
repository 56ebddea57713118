package configdrive

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// doLayout is the DigitalOcean drive tree the image tests are built from.
const doLayout = "testdata/do-layout"

// imageKind is one way clouds and tools write a config drive.
type imageKind struct {
	name   string
	fstype string
	label  string // as Probe reports it
	build  func(t testing.TB, tree, label, out string)
}

var (
	// OpenStack Nova's own command line: Rock Ridge and Joliet.
	kindRR      = imageKind{"genisoimage -J -r", FSISO9660, "config-2", isoBuilder("genisoimage", "-J", "-r")}
	kindXorriso = imageKind{"xorriso -J -r", FSISO9660, "config-2", isoBuilder("xorriso", "-as", "mkisofs", "-J", "-r")}
	// Joliet only: the primary tree has 8.3 names (DIGITALO.JSO;1).
	kindJoliet        = imageKind{"genisoimage -J", FSISO9660, "config-2", isoBuilder("genisoimage", "-J")}
	kindXorrisoJoliet = imageKind{"xorriso -J", FSISO9660, "config-2", isoBuilder("xorriso", "-as", "mkisofs", "-J")}
	kindRockRidge     = imageKind{"genisoimage -r", FSISO9660, "config-2", isoBuilder("genisoimage", "-r")}
	kindFAT12         = imageKind{"mkfs.vfat FAT12", FSVFAT, "CONFIG-2", fatBuilder("-F", "12")}
	kindFAT16         = imageKind{"mkfs.vfat FAT16", FSVFAT, "CONFIG-2", fatBuilder("-F", "16", "-s", "1")}
	kindFAT32         = imageKind{"mkfs.vfat FAT32", FSVFAT, "CONFIG-2", fatBuilder("-F", "32", "-s", "1")}
	// One FAT copy: valid, mounted by the kernel, beyond go-diskfs v1.9.4.
	kindFAT12OneFAT = imageKind{"mkfs.vfat FAT12 -f 1", FSVFAT, "CONFIG-2", fatBuilder("-F", "12", "-f", "1")}

	imageKinds = []imageKind{kindRR, kindXorriso, kindJoliet, kindXorrisoJoliet, kindRockRidge, kindFAT12, kindFAT16, kindFAT32}
)

// isoBuilder returns a builder running an mkisofs-style command.
func isoBuilder(prog string, args ...string) func(t testing.TB, tree, label, out string) {
	return func(t testing.TB, tree, label, out string) {
		t.Helper()
		p := testenv.RequireCommands(t, prog)[prog]
		argv := append(append([]string{}, args...), "-quiet", "-V", label, "-o", out, tree)
		run(t, p, argv...)
	}
}

// fatBuilder returns a builder making a FAT image with mkfs.vfat and
// filling it with mcopy. The size gives each FAT type a legal cluster
// count: FAT32 needs at least 65525 clusters.
func fatBuilder(args ...string) func(t testing.TB, tree, label, out string) {
	return func(t testing.TB, tree, label, out string) {
		t.Helper()
		p := testenv.RequireCommands(t, "mkfs.vfat", "mcopy")
		kib := "1440"
		switch args[1] {
		case "16":
			kib = "8192"
		case "32":
			kib = "36000"
		}
		argv := append(append([]string{"-C"}, args...), "-n", label, out, kib)
		run(t, p["mkfs.vfat"], argv...)
		entries, err := os.ReadDir(tree)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			return
		}
		cp := []string{"-s", "-i", out}
		for _, e := range entries {
			cp = append(cp, filepath.Join(tree, e.Name()))
		}
		run(t, p["mcopy"], append(cp, "::/")...)
	}
}

func run(t testing.TB, prog string, args ...string) {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		shown := args
		if len(shown) > 8 {
			shown = append(shown[:8:8], "...")
		}
		t.Fatalf("%s %q: %v\n%s", prog, shown, err, out)
	}
}

// buildImage writes an image of tree into a fresh temporary directory.
func buildImage(t testing.TB, k imageKind, tree, label string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "drive.img")
	k.build(t, tree, label, out)
	return out
}

// copyTree copies the directory src to a new temporary directory, so a
// test can change a drive's content without touching testdata.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "tree")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

func readTestFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantFiles is what ReadFiles must return for tree, version and image.
func wantFiles(t testing.TB, tree, version, source, fstype string) Files {
	t.Helper()
	v := filepath.Join(tree, "openstack", version)
	opt := func(p string) []byte {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return Files{
		Source:       source,
		FSType:       fstype,
		Version:      version,
		MetaData:     readTestFile(t, filepath.Join(v, "meta_data.json")),
		NetworkData:  opt(filepath.Join(v, "network_data.json")),
		VendorData:   opt(filepath.Join(v, "vendor_data.json")),
		UserData:     opt(filepath.Join(v, "user_data")),
		DigitalOcean: opt(filepath.Join(tree, "digitalocean_meta_data.json")),
	}
}
