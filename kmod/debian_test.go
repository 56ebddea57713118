package kmod

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

// debianModules are the loadable modules the QEMU test loads from Debian's
// cloud kernel, with the ones they need.
var debianModules = map[string]string{
	"virtio_pci":            "kernel/drivers/virtio/virtio_pci.ko",
	"virtio_pci_legacy_dev": "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
	"virtio_pci_modern_dev": "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
	"virtio":                "kernel/drivers/virtio/virtio.ko",
	"virtio_ring":           "kernel/drivers/virtio/virtio_ring.ko",
	"virtio_blk":            "kernel/drivers/block/virtio_blk.ko",
	"virtio_net":            "kernel/drivers/net/virtio_net.ko",
	"net_failover":          "kernel/drivers/net/net_failover.ko",
	"failover":              "kernel/net/core/failover.ko",
	"isofs":                 "kernel/fs/isofs/isofs.ko",
	"cdrom":                 "kernel/drivers/cdrom/cdrom.ko",
}

// debianSystem makes a fake system whose module tree is the Debian cloud
// kernel's, indexed by the real depmod. compress, when not nil, gives the
// tool and arguments that recompress each module (by name) into a tree of
// only debianModules; otherwise the whole tree is linked in as shipped.
func debianSystem(t *testing.T, compress func(name string) (ext, tool string, args []string)) *fakeSystem {
	t.Helper()
	k := fetchedKernel(t)
	depmod := testenv.RequireCommands(t, "depmod")["depmod"]
	s := newFakeSystem(t)
	s.release = k.Release
	s.tree = "/lib/modules/" + k.Release
	treeDir := filepath.Join(s.root, s.tree)
	if err := os.MkdirAll(treeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		b, err := os.ReadFile(filepath.Join(k.ModulesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		s.write(s.tree+"/"+f, b)
	}
	if compress == nil {
		if err := os.Symlink(filepath.Join(k.ModulesDir, "kernel"), filepath.Join(treeDir, "kernel")); err != nil {
			t.Fatal(err)
		}
	}
	for name, rel := range debianModules {
		img, err := os.ReadFile(filepath.Join(k.ModulesDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		s.kernel.images[string(img)] = name
		if compress != nil {
			ext, tool, args := compress(name)
			s.compressedFile(rel+ext, img, tool, args...)
		}
	}
	if out, err := exec.Command(depmod, "-b", s.root, k.Release).CombinedOutput(); err != nil {
		t.Fatalf("depmod -b %s %s: %v\n%s", s.root, k.Release, err, out)
	}
	return s
}

// debianSpecs is what the QEMU test asks for, plus aliases and a miss.
var debianSpecs = []string{"virtio_pci", "virtio_blk", "virtio_net", "isofs", "af_packet", "net-pf-17", "fs-iso9660", "nosuch"}

// debianWant is the outcome of debianSpecs on a fresh system, via being
// how each loadable module was loaded.
func debianWant(via string) []outcome {
	loaded := func(name, m string, dep bool) outcome { return outcome{name, m, dep, Loaded, via} }
	return []outcome{
		loaded("virtio_pci", "virtio_ring", true),
		loaded("virtio_pci", "virtio", true),
		loaded("virtio_pci", "virtio_pci_modern_dev", true),
		loaded("virtio_pci", "virtio_pci_legacy_dev", true),
		loaded("virtio_pci", "virtio_pci", false),
		loaded("virtio_blk", "virtio_blk", false),
		loaded("virtio_net", "failover", true),
		loaded("virtio_net", "net_failover", true),
		loaded("virtio_net", "virtio_net", false),
		loaded("isofs", "cdrom", true),
		loaded("isofs", "isofs", false),
		{"af_packet", "af_packet", false, BuiltIn, ""},
		{"net-pf-17", "af_packet", false, BuiltIn, ""},
		{"fs-iso9660", "isofs", false, AlreadyLoaded, ""},
		{"nosuch", "nosuch", false, Failed, ""},
	}
}

// TestDebianTree resolves names against the real Debian cloud kernel's
// tree and loads the real module files into the fake kernel, which accepts
// them only byte for byte.
func TestDebianTree(t *testing.T) {
	s := debianSystem(t, nil)
	results := s.loader().Load(context.Background(), debianSpecs...)
	checkDebian(t, debianWant("finit_module"), results)
	for _, r := range results {
		if (r.Outcome == Failed) != (r.Module == "nosuch") {
			t.Errorf("%v", r)
		}
	}
}

// TestDebianTreeRecompressed is the userspace decompression path of Debian
// 12's 6.1 kernel, which has no CONFIG_MODULE_DECOMPRESS: the tree's
// modules recompressed as .ko.xz (crc32, as the kernel's own build does)
// and .ko.zst, indexed again by depmod. Not .ko.gz: Debian 12's depmod is
// built without zlib and leaves such files out of modules.dep (gzip is
// covered by TestLoadCompressed).
func TestDebianTreeRecompressed(t *testing.T) {
	s := debianSystem(t, func(name string) (string, string, []string) {
		switch name {
		case "isofs", "cdrom", "virtio_blk":
			return ".zst", "zstd", []string{"-c", "-q"}
		}
		return ".xz", "xz", []string{"-c", "--check=crc32", "--lzma2=dict=1MiB"}
	})
	results := s.loader().Load(context.Background(), debianSpecs...)
	want := debianWant("")
	for i, w := range want {
		if w.Outcome == Loaded {
			want[i].Via = map[string]string{
				"isofs": "init_module, zstd decompressed here", "cdrom": "init_module, zstd decompressed here",
				"virtio_blk": "init_module, zstd decompressed here",
			}[w.Module]
			if want[i].Via == "" {
				want[i].Via = "init_module, xz decompressed here"
			}
		}
	}
	checkDebian(t, want, results)
}

// checkDebian compares results with want, where modules that depmod may
// list in either order (siblings with no dependency between them) may
// swap: the results must hold the same outcomes, and every module must
// come after each module that modinfo (the real tool) says it depends on.
func checkDebian(t *testing.T, want []outcome, results []Result) {
	t.Helper()
	byModule := cmpopts.SortSlices(func(a, b outcome) bool { return a.Module+a.Name < b.Module+b.Name })
	if diff := cmp.Diff(want, outcomes(results), byModule); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	modinfo := testenv.RequireCommands(t, "modinfo")["modinfo"]
	k := fetchedKernel(t)
	seen := map[string]bool{}
	for _, r := range results {
		if r.Outcome == Loaded {
			out, err := exec.Command(modinfo, "-F", "depends", filepath.Join(k.ModulesDir, debianModules[r.Module])).Output()
			if err != nil {
				t.Fatalf("modinfo %s: %v", r.Module, err)
			}
			for _, d := range strings.Split(strings.TrimSpace(string(out)), ",") {
				if d != "" && !seen[d] {
					t.Errorf("%s loaded before %s, which it depends on", r.Module, d)
				}
			}
		}
		seen[r.Module] = true
	}
}
