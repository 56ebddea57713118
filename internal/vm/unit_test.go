package vm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

func TestParseMarkers(t *testing.T) {
	console := "[    1.0] some kernel line\r\n" +
		"VMTEST init=started\r\n" +
		"VMTEST-BEGIN modules\r\n" +
		"virtio_net 57344 0 - Live 0x0\r\n" +
		"VMTEST not a marker inside a block\r\n" +
		"\r\n" +
		"VMTEST-END modules\r\n" +
		"VMTEST modules.exit=0\r\n" +
		"VMTEST key=a=b\n" +
		"VMTEST-BEGIN empty\n" +
		"VMTEST-END empty\n" +
		"VMTEST-BEGIN cut\n" +
		"the guest died here\n"
	got := ParseMarkers(console)
	want := Results{
		Values: map[string]string{"init": "started", "modules.exit": "0", "key": "a=b"},
		Blocks: map[string][]string{
			"modules": {"virtio_net 57344 0 - Live 0x0", "VMTEST not a marker inside a block", ""},
			"empty":   {},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseMarkers: (-want +got)\n%s", diff)
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd5a9e1000)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e0e000000)\n" +
		"\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f0e0e200000)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f0e0e400000)\n"
	got, err := parseLdd(out)
	if err != nil {
		t.Fatalf("parseLdd: %v", err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libz.so.1", "/lib64/ld-linux-x86-64.so.2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseLdd: (-want +got)\n%s", diff)
	}
	if _, err := parseLdd("\tlibgone.so.1 => not found\n"); err == nil || !strings.Contains(err.Error(), "libgone.so.1") {
		t.Errorf("parseLdd of a missing library: err = %v, want one naming libgone.so.1", err)
	}
}

// TestAddHostBinary copies a real dynamic program with its libraries and
// runs it chrooted in the copy: the copy is complete when it starts there.
func TestAddHostBinary(t *testing.T) {
	testenv.RequireRoot(t)
	paths := testenv.RequireCommands(t, "ldd", "true")
	r := NewInitramfs(t)
	r.AddHostBinary("/bin/true", paths["true"])
	libs, err := sharedLibraries(paths["true"])
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) == 0 {
		t.Fatalf("sharedLibraries(%s) = none; want libc and the loader (is it static?)", paths["true"])
	}
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: r.Dir()}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run /bin/true chrooted in %s: %v\n%s", r.Dir(), err, out)
	}
}

// TestWriteCPIO archives a tree and reads it back with GNU cpio.
func TestWriteCPIO(t *testing.T) {
	cpio := testenv.RequireCommands(t, "cpio")["cpio"]
	src := t.TempDir()
	mustWrite := func(name, data string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("init", "#!/bin/sh\necho hi\n", 0o755)
	mustWrite("etc/a", "abc", 0o600) // 3 bytes: the data needs padding
	mustWrite("lib/modules/x/empty", "", 0o644)
	if err := os.Symlink("/bin/busybox", filepath.Join(src, "sh")); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	console := cpioEntry{name: "dev/console", mode: syscall.S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1}
	if err := os.Mkdir(filepath.Join(src, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeCPIO(&archive, src, []cpioEntry{console}); err != nil {
		t.Fatalf("writeCPIO: %v", err)
	}
	if archive.Len()%4 != 0 {
		t.Errorf("archive is %d bytes, not a multiple of 4", archive.Len())
	}

	list := exec.Command(cpio, "-t", "-v", "--quiet")
	list.Stdin = bytes.NewReader(archive.Bytes())
	out, err := list.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	if !regexp.MustCompile(`(?m)^crw-------\s+1 root\s+root\s+5,\s+1 .* dev/console$`).MatchString(string(out)) {
		t.Errorf("cpio -tv has no root-owned char device 5,1 dev/console:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^drwxr-xr-x\s+2 root\s+root\s+0 .* \.$`).MatchString(string(out)) {
		t.Errorf("cpio -tv has no root-owned 0755 . (the root's own mode):\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^-rwxr-xr-x\s+1 root\s+root\s+18 .* init$`).MatchString(string(out)) {
		t.Errorf("cpio -tv has no root-owned 0755 init of 18 bytes:\n%s", out)
	}

	dst := t.TempDir()
	extract := exec.Command(cpio, "-i", "-d", "--quiet", "--no-absolute-filenames", "--nonmatching", "dev/console")
	extract.Dir = dst
	extract.Stdin = bytes.NewReader(archive.Bytes())
	if out, err := extract.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for _, f := range []struct {
		name, data string
		mode       os.FileMode
	}{
		{"init", "#!/bin/sh\necho hi\n", 0o755},
		{"etc/a", "abc", 0o600},
		{"lib/modules/x/empty", "", 0o644},
	} {
		p := filepath.Join(dst, f.name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("read back %s: %v", f.name, err)
			continue
		}
		if string(got) != f.data {
			t.Errorf("%s = %q, want %q", f.name, got, f.data)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != f.mode {
			t.Errorf("%s mode = %v, want %v", f.name, fi.Mode().Perm(), f.mode)
		}
	}
	if target, err := os.Readlink(filepath.Join(dst, "sh")); err != nil || target != "/bin/busybox" {
		t.Errorf("readlink sh = %q, %v; want /bin/busybox", target, err)
	}
}

// TestExt4Image builds an image from a directory and reads it back with
// debugfs and blkid: label, contents, and a missing file reported.
func TestExt4Image(t *testing.T) {
	tools := testenv.RequireCommands(t, "mke2fs", "debugfs", "blkid")
	src := WriteTree(t, t.TempDir(), map[string]string{
		"etc/ssh/authorized_keys.d/root": "ssh-ed25519 AAAA baked\n",
	})
	img := Ext4Image(t, src, "rootfs", 8)
	got, err := Ext4ReadFile(img, "/etc/ssh/authorized_keys.d/root")
	if err != nil {
		t.Fatalf("Ext4ReadFile: %v", err)
	}
	if string(got) != "ssh-ed25519 AAAA baked\n" {
		t.Errorf("Ext4ReadFile = %q, want the file written", got)
	}
	if _, err := Ext4ReadFile(img, "/no/such/file"); err == nil {
		t.Errorf("Ext4ReadFile of a missing file: no error")
	}
	out, err := exec.Command(tools["blkid"], "-o", "export", img).Output()
	if err != nil {
		t.Fatalf("blkid %s: %v", img, err)
	}
	for _, want := range []string{"LABEL=rootfs", "TYPE=ext4"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("blkid -o export %s has no %s:\n%s", img, want, out)
		}
	}
}

// TestISOImage checks the label and the Rock Ridge name with isoinfo.
func TestISOImage(t *testing.T) {
	isoinfo := testenv.RequireCommands(t, "isoinfo")["isoinfo"]
	src := WriteTree(t, t.TempDir(), map[string]string{"openstack/latest/meta_data.json": `{"uuid":"1"}`})
	img := ISOImage(t, src, "config-2", "-r", "-J")
	out, err := exec.Command(isoinfo, "-d", "-i", img).Output()
	if err != nil {
		t.Fatalf("isoinfo -d -i %s: %v", img, err)
	}
	if !strings.Contains(string(out), "Volume id: config-2\n") {
		t.Errorf("isoinfo -d: no volume id config-2:\n%s", out)
	}
	data, err := exec.Command(isoinfo, "-R", "-i", img, "-x", "/openstack/latest/meta_data.json").Output()
	if err != nil {
		t.Fatalf("isoinfo -R -x: %v", err)
	}
	if string(data) != `{"uuid":"1"}` {
		t.Errorf("meta_data.json from the ISO = %q", data)
	}
}

// programTB is a TB outside go test, as a demo program would write one:
// Fatalf stops the caller (here by a panic the test recovers).
type programTB struct {
	t     *testing.T // where its logs and temporary directories go
	fatal string
}

func (p *programTB) Helper()                           {}
func (p *programTB) Logf(format string, args ...any)   { p.t.Logf(format, args...) }
func (p *programTB) Errorf(format string, args ...any) { p.t.Errorf(format, args...) }
func (p *programTB) Failed() bool                      { return p.t.Failed() }
func (p *programTB) TempDir() string                   { return p.t.TempDir() }
func (p *programTB) Cleanup(f func())                  { p.t.Cleanup(f) }

type stopped struct{}

func (p *programTB) Fatalf(format string, args ...any) {
	p.fatal = fmt.Sprintf(format, args...)
	panic(stopped{})
}

// TestProgramTB: without a testing.TB a missing program stops the caller
// with a message naming it, instead of skipping.
func TestProgramTB(t *testing.T) {
	p := &programTB{t: t}
	var tb TB = p
	if _, isTest := tb.(testing.TB); isTest {
		t.Fatal("programTB must not be a testing.TB for this test to mean anything")
	}
	if got := requireCommands(tb, "sh")["sh"]; got == "" {
		t.Errorf("requireCommands(sh) found nothing")
	}
	func() {
		defer func() {
			if r := recover(); r != (stopped{}) {
				t.Errorf("requireCommands of a missing program did not stop: recover() = %v", r)
			}
		}()
		requireCommands(tb, "no-such-program-vmtest")
	}()
	if !strings.Contains(p.fatal, "no-such-program-vmtest") {
		t.Errorf("fatal message %q does not name the missing program", p.fatal)
	}
}

// TestArgs: QEMU's command line for disks and the NIC, commas in values
// escaped, a free host port per forwarded guest port.
func TestArgs(t *testing.T) {
	v := &VM{hostPorts: map[int]int{}, monitor: "/tmp/vm-1/monitor"}
	got, err := v.args(Config{
		Kernel:    "/k/vmlinuz",
		Initramfs: "/i.cpio",
		Cmdline:   []string{"loglevel=7"},
		MemoryMiB: 256,
		Disks: []Disk{
			{Path: "/d/root,1.img", Serial: "root"},
			{Path: "/d/cfg.iso", ReadOnly: true, Format: "raw", Serial: "a,b"},
		},
		Net:       &Net{ForwardTCP: []int{22}, UserOptions: []string{"net=10.0.3.0/24"}, MAC: "52:54:00:00:00:01"},
		ExtraArgs: []string{"-device", "virtio-rng-pci"},
	})
	if err != nil {
		t.Fatal(err)
	}
	port := v.HostPort(22)
	if port == 0 {
		t.Fatalf("HostPort(22) = 0 after args")
	}
	want := []string{
		"-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "256",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio", "-monitor", "unix:/tmp/vm-1/monitor,server=on,wait=off",
		"-kernel", "/k/vmlinuz", "-initrd", "/i.cpio", "-append", "console=ttyS0 panic=-1 quiet loglevel=7",
		"-drive", "file=/d/root,,1.img,format=raw,if=none,id=disk0", "-device", "virtio-blk-pci,drive=disk0,serial=root",
		"-drive", "file=/d/cfg.iso,format=raw,if=none,id=disk1,readonly=on", "-device", "virtio-blk-pci,drive=disk1,serial=a,,b",
		"-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:" + strconv.Itoa(port) + "-:22,net=10.0.3.0/24",
		"-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01",
		"-device", "virtio-rng-pci",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("args: (-want +got)\n%s", diff)
	}
}
