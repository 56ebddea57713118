// Package vm_test holds the tier-2 tests: each boots Debian's cloud kernel
// under QEMU (TCG) with an initramfs holding the static notos-agent and
// asserts from the serial console. Run just these with
//
//	go test ./test/vm/ -run Modprobe -v
//
// They skip in -short, and skip outside CI (fail under CI=true) when QEMU,
// busybox, depmod or the kernel are missing.
package vm_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notos-agent/notos-agent/internal/testenv"
	"github.com/notos-agent/notos-agent/internal/vm"
)

// bootTimeout bounds one boot and its checks. A boot takes 3 to 8 s here
// under TCG; the margin is for a host whose two cores are busy.
const bootTimeout = 120 * time.Second

// The modules issue 3 names; af_packet is built into Debian's cloud kernel.
var modprobeNames = []string{"virtio_pci", "virtio_blk", "virtio_net", "isofs", "af_packet"}

// metaData is the file the config-drive ISO carries and the guest reads
// back through the kernel's isofs.
const metaData = `{"uuid": "vmtest-0001", "hostname": "vmtest"}`

// TestModprobe boots the kernel three times, with the modules stored as
// shipped (.ko), recompressed as .ko.xz and as .ko.zst, each tree indexed
// by depmod -b, and has the guest's /init run `notos-agent modprobe`.
// (No .ko.gz: Debian 12's depmod is built without zlib and leaves such
// files out of modules.dep.)
func TestModprobe(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: boots a kernel under QEMU three times")
	}
	testenv.RequireCommands(t, "qemu-system-x86_64", "busybox", "depmod", "genisoimage", "xz", "zstd")
	k := vm.FetchKernel(t)
	agent := testenv.AgentBinary(t)
	// A config drive as OpenStack writes it.
	drive := vm.WriteTree(t, t.TempDir(), map[string]string{"openstack/latest/meta_data.json": metaData})
	iso := vm.ISOImage(t, drive, "config-2", "-r", "-J")
	root := filepath.Join(t.TempDir(), "root.img")
	if err := os.WriteFile(root, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatalf("write %s: %v", root, err)
	}

	// Debian 12's 6.1 kernel is built without CONFIG_MODULE_DECOMPRESS:
	// finit_module refuses a compressed file and the agent decompresses it
	// and calls init_module. A kernel that decompresses itself takes the
	// first path.
	decompress, err := k.ConfigOption("CONFIG_MODULE_DECOMPRESS")
	if err != nil {
		t.Fatal(err)
	}
	compressedVia := func(format string) string {
		if decompress == "y" {
			return "finit_module, decompressed by the kernel"
		}
		return "init_module, " + format + " decompressed here"
	}
	for _, c := range []struct {
		name string
		comp vm.Compression
		via  string
	}{
		{"ko", vm.Uncompressed, "finit_module"},
		{"ko.xz", vm.XZ, compressedVia("xz")},
		{"ko.zst", vm.Zstd, compressedVia("zstd")},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := vm.NewInitramfs(t)
			r.AddBusybox()
			r.CopyFile("/bin/notos-agent", agent)
			files := r.AddModules(k, c.comp, modprobeNames...)
			r.AddInit(vm.InitScript(`
vmtest_run modprobe notos-agent modprobe ` + strings.Join(modprobeNames, " ") + `
vmtest_run missing notos-agent modprobe does-not-exist
vmtest_run aliases notos-agent modprobe fs-iso9660 net-pf-17
vmtest_run proc_modules cat /proc/modules
vmtest_ls block /sys/block
vmtest_ls net /sys/class/net
vmtest_run vda_serial cat /sys/block/vda/serial
vmtest_run mount mount -t iso9660 -o ro /dev/vdb /mnt
vmtest_run meta_data cat /mnt/openstack/latest/meta_data.json
`))
			ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
			defer cancel()
			v := vm.Boot(ctx, t, vm.Config{
				Kernel:    k.Vmlinuz,
				Initramfs: r.Pack(),
				Disks: []vm.Disk{
					{Path: root, Serial: "vmtest-root"},
					{Path: iso, ReadOnly: true, Serial: "config-2"},
				},
				Net: &vm.Net{},
			})
			if _, err := v.WaitValue(ctx, "init"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if _, err := v.Wait(ctx, regexp.MustCompile(`^VMTEST init=done$`)); err != nil {
				t.Fatal(err)
			}
			t.Logf("boot to /init: %.2fs; /init's work: %.2fs; modules: %s",
				v.BootTime().Seconds(), time.Since(start).Seconds(), strings.Join(files, " "))
			if err := v.WaitExit(ctx); err != nil {
				t.Fatal(err)
			}
			checkModprobe(t, k, v.Results(), files, c.via)
		})
	}
}

// checkModprobe asserts what the guest printed.
func checkModprobe(t *testing.T, k *vm.Kernel, res vm.Results, files []string, via string) {
	// modprobe: exit 0, one line per module and dependency.
	if got := res.Values["modprobe.exit"]; got != "0" {
		t.Errorf("notos-agent modprobe %s: exit %s, want 0", strings.Join(modprobeNames, " "), got)
	}
	out := res.Blocks["modprobe"]
	t.Logf("notos-agent modprobe output:\n%s", strings.Join(out, "\n"))
	if len(out) == 0 || !strings.HasPrefix(out[0], "modules: /lib/modules/"+k.Release) {
		t.Errorf("modprobe output starts %q, want the tree used: modules: /lib/modules/%s", first(out), k.Release)
	}
	loaded := map[string]bool{}
	for _, f := range files {
		loaded[vm.ModuleName(f)] = true
	}
	for m := range loaded {
		line := lineFor(out, m)
		if !strings.Contains(line, ": loaded (") || !strings.Contains(line, ", "+via+")") {
			t.Errorf("modprobe line for %s = %q, want \"%s: loaded (TIME, %s)\"", m, line, m, via)
		}
	}
	// Each module once, after everything it depends on.
	index := map[string]int{}
	for i, l := range out {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		m, _, _ := strings.Cut(f[0], ":")
		if _, seen := index[m]; seen && m != "modules" {
			t.Errorf("modprobe reported %s twice", m)
		}
		index[m] = i
	}
	for _, name := range modprobeNames {
		closure, err := k.ModuleClosure(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, dep := range closure {
			if d := vm.ModuleName(dep); index[d] > index[name] {
				t.Errorf("modprobe loaded %s (line %d) after %s (line %d), which needs it", d, index[d], name, index[name])
			}
		}
	}

	builtin, err := k.Builtin("af_packet")
	if err != nil {
		t.Fatal(err)
	}
	if !builtin {
		t.Errorf("af_packet is not in modules.builtin of %s; this test expects Debian's cloud kernel", k.Release)
	}
	if line := lineFor(out, "af_packet"); !strings.HasPrefix(line, "af_packet: built-in (") {
		t.Errorf("modprobe line for af_packet = %q, want af_packet: built-in (...)", line)
	}

	// A missing module: exit 1 and a message naming it.
	if got := res.Values["missing.exit"]; got != "1" {
		t.Errorf("notos-agent modprobe does-not-exist: exit %s, want 1", got)
	}
	missing := strings.Join(res.Blocks["missing"], "\n")
	t.Logf("notos-agent modprobe does-not-exist output:\n%s", missing)
	for _, want := range []string{
		`(?m)^does_not_exist: failed: module not found`,               // its result line
		`(?m)^notos-agent: modprobe does-not-exist: module not found`, // the failure on stderr
	} {
		if !regexp.MustCompile(want).MatchString(missing) {
			t.Errorf("notos-agent modprobe does-not-exist: no line matching %s in:\n%s", want, missing)
		}
	}

	// Aliases from the subset's modules.alias (fs-iso9660, from isofs's
	// modinfo) and from modules.builtin.modinfo (net-pf-17, af_packet's).
	aliases := res.Blocks["aliases"]
	t.Logf("notos-agent modprobe fs-iso9660 net-pf-17 output:\n%s", strings.Join(aliases, "\n"))
	if got := res.Values["aliases.exit"]; got != "0" {
		t.Errorf("notos-agent modprobe fs-iso9660 net-pf-17: exit %s, want 0", got)
	}
	for _, want := range []string{"isofs (fs-iso9660): already loaded (", "af_packet (net-pf-17): built-in ("} {
		if !slices.ContainsFunc(aliases, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("notos-agent modprobe fs-iso9660 net-pf-17: no line starting %q", want)
		}
	}

	// The kernel has every module the agent loaded.
	var inKernel []string
	for _, l := range res.Blocks["proc_modules"] {
		if f := strings.Fields(l); len(f) > 0 {
			inKernel = append(inKernel, f[0])
		}
	}
	for m := range loaded {
		if !slices.Contains(inKernel, m) {
			t.Errorf("%s is not in /proc/modules: %v", m, inKernel)
		}
	}

	// The devices the drivers bound to: both disks and the NIC.
	if b := res.Blocks["block"]; !slices.Contains(b, "vda") || !slices.Contains(b, "vdb") {
		t.Errorf("/sys/block = %v, want vda and vdb", b)
	}
	if got := first(res.Blocks["vda_serial"]); got != "vmtest-root" {
		t.Errorf("/sys/block/vda/serial = %q, want vmtest-root (the first disk)", got)
	}
	if nics := res.Blocks["net"]; !slices.ContainsFunc(nics, func(n string) bool {
		return n == "eth0" || strings.HasPrefix(n, "en")
	}) {
		t.Errorf("/sys/class/net = %v, want eth0 or en*", nics)
	}

	// isofs works: the config-2 ISO mounts and reads back.
	if got := res.Values["mount.exit"]; got != "0" {
		t.Errorf("mount -t iso9660 -o ro /dev/vdb /mnt: exit %s: %s", got, strings.Join(res.Blocks["mount"], "\n"))
	}
	if got := strings.Join(res.Blocks["meta_data"], "\n"); got != metaData {
		t.Errorf("meta_data.json read from the mounted ISO = %q, want %q", got, metaData)
	}
}

// lineFor returns the output line about module m ("m: ..." or
// "m (alias): ...").
func lineFor(lines []string, m string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, m+": ") || strings.HasPrefix(l, m+" (") {
			return l
		}
	}
	return ""
}

func first(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[0]
}
