package vm_test

import (
	"context"
	"testing"
	"time"

	"github.com/notos-agent/notos-agent/internal/vm"
)

// A tier-2 test: the static agent in a busybox initramfs with the modules
// it needs, a config drive as vdb, QEMU's user network with the guest's
// port 22 forwarded, and results read from markers on the console.
func Example() {
	var t *testing.T // the test's own t

	k := vm.FetchKernel(t)
	r := vm.NewInitramfs(t)
	r.AddBusybox()
	r.AddAgent()
	r.AddModules(k, vm.XZ, "virtio_pci", "virtio_blk", "virtio_net", "isofs")
	r.AddInit(vm.InitScript(`
vmtest_run modprobe notos-agent modprobe virtio_pci virtio_blk virtio_net isofs
vmtest_ls block /sys/block
`))
	drive := vm.WriteTree(t, t.TempDir(), map[string]string{"openstack/latest/meta_data.json": `{"uuid": "1"}`})
	root := vm.Ext4Image(t, t.TempDir(), "rootfs", 16)

	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	v := vm.Boot(ctx, t, vm.Config{
		Kernel:    k.Vmlinuz,
		Initramfs: r.Pack(),
		Disks: []vm.Disk{
			{Path: root, Serial: "root"},
			{Path: vm.ISOImage(t, drive, "config-2", "-r", "-J"), ReadOnly: true},
		},
		Net: &vm.Net{ForwardTCP: []int{22}},
	})
	// Waits consume the console in order and stop early on a kernel panic
	// or QEMU's exit.
	if code, err := v.WaitValue(ctx, "modprobe.exit"); err != nil || code != "0" {
		t.Fatalf("modprobe: exit %q, %v", code, err)
	}
	if err := v.WaitExit(ctx); err != nil { // /init powered off
		t.Fatal(err)
	}
	t.Logf("block devices: %v", v.Results().Blocks["block"])
	// SSH, for a guest running sshd:
	// vm.SSHCommand(ctx, v.HostPort(22), keyFile, "hostname").Output()
}
