package configdrive

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/notos-agent/notos-agent/internal/testenv"
	"github.com/notos-agent/notos-agent/internal/vm"
)

// guestEnv is set in the QEMU guest, where this package's own test binary
// runs the TestGuest* tests against a real kernel's block devices.
const guestEnv = "NOTOS_CONFIGDRIVE_GUEST"

// The guest's disks, in the order QEMU attaches them (vda, vdb, ...).
var guestDisks = []struct {
	dev, fstype, label string
	kind               imageKind
}{
	{"/dev/vda", FSISO9660, "config-2", kindRR},
	{"/dev/vdb", FSISO9660, "cfgvm-joliet", kindJoliet},
	{"/dev/vdc", FSVFAT, "CFGVM-1FAT", kindFAT12OneFAT},
	{"/dev/vdd", FSVFAT, "CFGVM-FAT32", kindFAT32},
}

// TestKernelVM (tier 2) boots the Debian cloud kernel with this package's
// test binary in the initramfs and the drives as virtio disks, and runs
// the TestGuest* tests there: the kernel-mount path that this host's
// kernel (no isofs, no vfat) cannot run.
func TestKernelVM(t *testing.T) {
	if os.Getenv(guestEnv) != "" {
		t.Skip("skipped: this is the guest")
	}
	if testing.Short() {
		t.Skip("skipped in -short: boots a kernel under QEMU")
	}
	testenv.RequireCommands(t, "qemu-system-x86_64", "busybox", "depmod")
	goTool := testenv.RequireCommands(t, "go")["go"]

	bin := filepath.Join(t.TempDir(), "configdrive.test")
	build := exec.Command(goTool, "test", "-c", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}

	k := vm.FetchKernel(t)
	r := vm.NewInitramfs(t)
	r.AddBusybox()
	mods := r.AddModules(k, vm.Uncompressed, "virtio_pci", "virtio_blk", "isofs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8")
	r.CopyFile("/configdrive/configdrive.test", bin)
	err := filepath.WalkDir(doLayout, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		r.CopyFile("/configdrive/"+p, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r.AddInit(vm.InitScript(`
cd /lib/modules/` + k.Release + `
for m in ` + strings.Join(mods, " ") + `; do insmod $m || vmtest insmod.failed $m; done
cd /configdrive
vmtest_run guest env ` + guestEnv + `=1 ./configdrive.test -test.run '^TestGuest' -test.v -test.count=1
`))

	var disks []vm.Disk
	for _, d := range guestDisks {
		disks = append(disks, vm.Disk{Path: buildImage(t, d.kind, doLayout, d.label), ReadOnly: true})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 240*time.Second)
	defer cancel()
	v := vm.Boot(ctx, t, vm.Config{Kernel: k.Vmlinuz, Initramfs: r.Pack(), Disks: disks})
	if err := v.WaitExit(ctx); err != nil {
		t.Fatal(err)
	}
	res := v.Results()
	if m, ok := res.Values["insmod.failed"]; ok {
		t.Fatalf("insmod %s failed", m)
	}
	out := strings.Join(res.Blocks["guest"], "\n")
	if code := res.Values["guest.exit"]; code != "0" {
		t.Fatalf("guest tests: exit %q:\n%s", code, out)
	}
	for _, name := range []string{"TestGuestReadMounted", "TestGuestReadFilesFallback", "TestGuestFind"} {
		if !strings.Contains(out, "--- PASS: "+name) {
			t.Errorf("%s did not pass in the guest:\n%s", name, out)
		}
	}
	t.Logf("guest:\n%s", out)
}

func requireGuest(t *testing.T) {
	t.Helper()
	if os.Getenv(guestEnv) == "" {
		t.Skip("skipped: runs inside TestKernelVM's guest")
	}
}

const guestRunDir = "/run/notos-agent"

// assertNothingMounted checks that no mount is left under the run
// directory and that the private mount points are gone.
func assertNothingMounted(t *testing.T) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), guestRunDir+"/") {
		t.Errorf("still mounted under %s:\n%s", guestRunDir, mi)
	}
	if entries, err := os.ReadDir(guestRunDir); err == nil && len(entries) > 0 {
		t.Errorf("%s still holds %d entries", guestRunDir, len(entries))
	}
}

// TestGuestReadMounted: ReadMounted mounts each drive with the real
// kernel (isofs with Rock Ridge or Joliet only, vfat with one FAT or
// FAT32), reads the files and leaves nothing mounted.
func TestGuestReadMounted(t *testing.T) {
	requireGuest(t)
	for _, d := range guestDisks {
		got, err := ReadMounted(context.Background(), d.dev, d.fstype, ReadOptions{RunDir: guestRunDir})
		if err != nil {
			t.Errorf("ReadMounted(%s, %s): %v", d.dev, d.fstype, err)
			continue
		}
		if diff := cmp.Diff(wantFiles(t, doLayout, "latest", d.dev, d.fstype), got); diff != "" {
			t.Errorf("ReadMounted(%s) (-want +got):\n%s", d.dev, diff)
		}
		assertNothingMounted(t)
	}
}

// TestGuestReadFilesFallback: go-diskfs cannot read a FAT with one FAT
// copy; on a block device ReadFiles falls back to the kernel's vfat.
func TestGuestReadFilesFallback(t *testing.T) {
	requireGuest(t)
	const dev = "/dev/vdc"
	got, err := ReadFiles(context.Background(), dev, ReadOptions{RunDir: guestRunDir})
	if err != nil {
		t.Fatalf("ReadFiles(%s): %v", dev, err)
	}
	if diff := cmp.Diff(wantFiles(t, doLayout, "latest", dev, FSVFAT), got); diff != "" {
		t.Errorf("ReadFiles(%s) (-want +got):\n%s", dev, diff)
	}
	assertNothingMounted(t)
}

// TestGuestFind: Find scans the kernel's /sys/class/block and, with no
// udev, makes a missing /dev node from sysfs.
func TestGuestFind(t *testing.T) {
	requireGuest(t)
	for _, d := range guestDisks {
		if err := os.Remove(d.dev); err != nil {
			t.Fatal(err)
		}
		got, err := Find(context.Background(), FindOptions{Label: strings.ToUpper(d.label), Wait: 5 * time.Second})
		if err != nil || got != d.dev {
			t.Errorf("Find(%q) = %q, %v; want %s", d.label, got, err, d.dev)
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(d.dev, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
			t.Errorf("%s after Find: mode %o, %v; want a block device", d.dev, st.Mode, err)
		}
	}
	md, err := Load(context.Background(), Options{Wait: 5 * time.Second, RunDir: guestRunDir})
	if err != nil || md.Source != "/dev/vda" || len(md.PublicKeys) != 2 {
		t.Errorf("Load() = %v, %v; want /dev/vda with 2 keys", md, err)
	}
}
