package mkdrive

import (
	"context"
	"crypto/md5"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/internal/testenv"
	"github.com/notos-agent/notos-agent/internal/vm"
)

// TestKernelMountsImages (tier 2): the Linux kernel the agent runs on
// mounts both images and reads every file back: the ISO through isofs's
// Rock Ridge tree (what a plain mount uses) and through its Joliet tree
// (mount -o norock), the FAT32 image through vfat.
func TestKernelMountsImages(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: boots a kernel under QEMU")
	}
	testenv.RequireCommands(t, "qemu-system-x86_64", "busybox", "depmod")
	files := testFiles(t)
	dir := t.TempDir()
	iso, img := filepath.Join(dir, "drive.iso"), filepath.Join(dir, "drive.img")
	if err := Write(iso, ISO, files); err != nil {
		t.Fatal(err)
	}
	if err := Write(img, VFAT, files); err != nil {
		t.Fatal(err)
	}

	k := vm.FetchKernel(t)
	r := vm.NewInitramfs(t)
	r.AddBusybox()
	mods := r.AddModules(k, vm.Uncompressed, "virtio_pci", "virtio_blk", "isofs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8")
	r.AddInit(vm.InitScript(`
cd /lib/modules/` + k.Release + `
for m in ` + strings.Join(mods, " ") + `; do insmod $m || vmtest insmod.failed $m; done
cd /
mkdir -p /mnt/rr /mnt/joliet /mnt/vfat
vmtest_run mount.rr mount -t iso9660 -o ro /dev/vda /mnt/rr
vmtest_run mount.joliet mount -t iso9660 -o ro,norock /dev/vda /mnt/joliet
vmtest_run mount.vfat mount -t vfat -o ro /dev/vdb /mnt/vfat
for m in rr joliet vfat; do
	vmtest_run sums.$m sh -c "cd /mnt/$m && find . -type f | sort | xargs md5sum"
done
`))
	ctx, cancel := context.WithTimeout(t.Context(), 180*time.Second)
	defer cancel()
	v := vm.Boot(ctx, t, vm.Config{
		Kernel:    k.Vmlinuz,
		Initramfs: r.Pack(),
		Disks: []vm.Disk{
			{Path: iso, ReadOnly: true},
			{Path: img, ReadOnly: true},
		},
	})
	if err := v.WaitExit(ctx); err != nil {
		t.Fatal(err)
	}
	res := v.Results()
	if m, ok := res.Values["insmod.failed"]; ok {
		t.Fatalf("insmod %s failed", m)
	}

	var paths, want []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths) // as the guest's find | sort lists them
	for _, p := range paths {
		want = append(want, fmt.Sprintf("%x  ./%s", md5.Sum(files[p]), p))
	}
	for _, m := range []string{"rr", "joliet", "vfat"} {
		if code := res.Values["mount."+m+".exit"]; code != "0" {
			t.Errorf("mount %s: exit %q: %s", m, code, strings.Join(res.Blocks["mount."+m], "\n"))
			continue
		}
		if diff := cmp.Diff(want, res.Blocks["sums."+m]); diff != "" {
			t.Errorf("md5sum of every file under the %s mount (-want +got):\n%s", m, diff)
		}
	}
}
