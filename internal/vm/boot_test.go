package vm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// bootTimeout bounds one boot under TCG on a busy two-core host; a healthy
// boot takes seconds.
const bootTimeout = 120 * time.Second

func requireVM(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: boots a kernel under QEMU")
	}
	testenv.RequireCommands(t, "qemu-system-x86_64", "busybox", "depmod")
}

// TestBoot proves the harness with busybox alone: modules copied with
// their dependencies and loaded by busybox insmod in the order returned,
// a disk with a serial number, and a forwarded TCP port reaching a guest
// listener over QEMU's user network, QEMU's monitor answering, a block
// read while the guest runs, and Config.Console receiving the console.
func TestBoot(t *testing.T) {
	requireVM(t)
	k := FetchKernel(t)
	r := NewInitramfs(t)
	r.AddBusybox()
	mods := r.AddModules(k, Uncompressed, "virtio_pci", "virtio_blk", "virtio_net")
	r.WriteFile("/bin/hello", []byte("#!/bin/sh\necho hello from the guest\n"), 0o755)
	r.AddInit(InitScript(`
cd /lib/modules/` + k.Release + `
for m in ` + strings.Join(mods, " ") + `; do insmod $m || vmtest insmod.failed $m; done
cd /
vmtest serial "$(cat /sys/block/vda/serial)"
vmtest_run proc_modules cat /proc/modules
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
nc -l -p 7777 -e /bin/hello &
until netstat -ltn | grep -q ':7777 '; do usleep 10000; done
vmtest listening 7777
wait
`))
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	var console bytes.Buffer // written by the reader until QEMU has exited
	v := Boot(ctx, t, Config{
		Kernel:    k.Vmlinuz,
		Initramfs: r.Pack(),
		Disks:     []Disk{{Path: disk, Serial: "harness-disk", ReadOnly: true}},
		Net:       &Net{ForwardTCP: []int{7777}},
		Console:   &console,
	})
	if serial, err := v.WaitValue(ctx, "serial"); err != nil {
		t.Fatal(err)
	} else if serial != "harness-disk" {
		t.Errorf("/sys/block/vda/serial = %q, want harness-disk", serial)
	}
	lines, err := v.WaitBlock(ctx, "proc_modules")
	if err != nil {
		t.Fatal(err)
	}
	var loaded []string
	for _, l := range lines {
		loaded = append(loaded, strings.Fields(l)[0])
	}
	for _, m := range mods {
		if !slices.Contains(loaded, ModuleName(m)) {
			t.Errorf("%s is not in /proc/modules: %v", ModuleName(m), loaded)
		}
	}
	if _, err := v.WaitValue(ctx, "listening"); err != nil {
		t.Fatal(err)
	}
	if status, err := v.Monitor(ctx, "info status"); err != nil {
		t.Error(err)
	} else if status != "VM status: running" {
		t.Errorf("monitor: info status = %q, want VM status: running", status)
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(v.HostPort(7777))), 10*time.Second)
	if err != nil {
		t.Fatalf("dial the forwarded port: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read from the guest through 127.0.0.1:%d: %v", v.HostPort(7777), err)
	}
	if string(got) != "hello from the guest\n" {
		t.Errorf("read %q through the forwarded port, want %q", got, "hello from the guest\n")
	}
	if err := v.WaitExit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(console.String(), "\r", ""); got != v.Console() {
		t.Errorf("Config.Console received %q, want the console %q", got, v.Console())
	}
	res := v.Results()
	if failed, ok := res.Values["insmod.failed"]; ok {
		t.Errorf("busybox insmod failed for %s", failed)
	}
	if res.Values["init"] != "done" {
		t.Errorf("VMTEST init=%q, want done", res.Values["init"])
	}
	t.Logf("boot to first marker: %.2fs", v.BootTime().Seconds())
}

// TestBootPanic: when /init dies the kernel panics, and a wait ends at the
// panic line instead of running into its deadline.
func TestBootPanic(t *testing.T) {
	requireVM(t)
	k := FetchKernel(t)
	r := NewInitramfs(t)
	r.AddBusybox()
	r.AddInit("#!/bin/sh\necho VMTEST init=started\nexit 3\n")
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	v := Boot(ctx, t, Config{Kernel: k.Vmlinuz, Initramfs: r.Pack()})
	start := time.Now()
	_, err := v.Wait(ctx, regexp.MustCompile(`never printed`))
	if err == nil || !strings.Contains(err.Error(), "Kernel panic") {
		t.Fatalf("Wait after /init exited: err = %v, want the kernel panic line", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Wait ended by its deadline after %v, not by the panic", time.Since(start))
	}
	if err := v.WaitExit(ctx); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("WaitExit after a panic: err = %v, want one saying the kernel panicked", err)
	}
}

// TestBootQEMUError: when QEMU refuses to start, a wait ends at once with
// QEMU's own message.
func TestBootQEMUError(t *testing.T) {
	requireVM(t)
	missing := filepath.Join(t.TempDir(), "no-such-vmlinuz")
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	v := Boot(ctx, t, Config{Kernel: missing, Initramfs: missing})
	_, err := v.Wait(ctx, regexp.MustCompile(`never printed`))
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Wait when QEMU cannot open the kernel: err = %v, want ErrExited naming %s", err, missing)
	}
}
