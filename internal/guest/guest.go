// Package guest builds and boots a not-os-like system under QEMU for the
// tier-2 and end-to-end tests: Debian's runit as PID 1, notos-agent in
// runit's stage 1, runsvdir with services in stage 2 (sshd configured as
// not-os configures it, the notos-net lease keeper), and DigitalOcean's
// disk layout: vda an ext4 disk labelled rootfs, vdb the config-2 drive.
//
// The whole system lives in the initramfs, which the kernel unpacks into
// a writable rootfs; vda is attached so that the guest has the disks a
// droplet has (the drive is vdb, and the agent must pick it by its label
// among other disks), but nothing mounts it. A not-os image runs from its
// initramfs the same way. What the system does is read from the serial
// console: stage 1 and stage 2 print markers (see vm.ShellHelpers), and
// stage 2 prints a report of the guest's files (see Report).
package guest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notos-agent/notos-agent/internal/testenv"
	"github.com/notos-agent/notos-agent/internal/vm"
)

// DefaultModules are loaded by stage 1 (`notos-agent run --modules`):
// the virtio drivers for the disks and the NIC, af_packet for the DHCP
// client (built into Debian's cloud kernel) and isofs for the drive.
var DefaultModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "af_packet", "isofs"}

// Options describe one guest. The zero value is a system with no sshd,
// no lease keeper, no baked key and no config drive.
type Options struct {
	// Agent is the host path of a static notos-agent. Empty in a test:
	// testenv.AgentBinary.
	Agent string
	// Modules are copied into the guest's module tree and passed to
	// `notos-agent run --modules`; nil means DefaultModules.
	Modules []string
	// Compression is how the modules are stored (.ko, .ko.xz, ...).
	Compression vm.Compression
	// RunArgs are added after `notos-agent run --modules LIST` in
	// /etc/runit/1 ("--timeout", "20s", "--net", "static", ...).
	RunArgs []string
	// SSHD adds the host's sshd as the stage-2 service "sshd", configured
	// as not-os does, with an ed25519 host key generated at build time.
	// The service prints "VMTEST sshd=listening" once port 22 is open.
	SSHD bool
	// AuthorizedKeys, when not empty, is baked into
	// /etc/ssh/authorized_keys.d/root (an authorized_keys file).
	AuthorizedKeys string
	// NetKeeper adds the stage-2 service "notos-net", the DHCP lease
	// keeper: examples/runit/sv/notos-net/run as shipped.
	NetKeeper bool
	// Services are more stage-2 services: name → run script (a shell
	// script without its #! line; vm.ShellHelpers are sourced).
	Services map[string]string
	// Stage1 is shell run at the end of /etc/runit/1, after the agent.
	Stage1 string
	// Stage1Script, when set, is /etc/runit/1 as it is (the shipped
	// examples/runit/1: Example(t, "runit/1")): no markers in stage 1,
	// Stage1 and RunArgs unused; stage 2 still reports.
	Stage1Script []byte
	// AgentIsStage1 makes /etc/runit/1 a symbolic link to the agent,
	// which runs as `run` and then execs /etc/runit/1.local (the rest of
	// stage 1, Stage1 included). runit gives it no arguments: RunArgs
	// must be empty and the modules go on the kernel command line
	// (KernelCmdline adds notos.modules=). The entropy before the run is
	// then not printed (state.json's seed step has it).
	AgentIsStage1 bool

	// Drive is the config-2 image attached as vdb (read-only); empty: no
	// drive at all.
	Drive string
	// ForwardSSH forwards a free host port to guest port 22
	// (VM.HostPort(22)).
	ForwardSSH bool
	// Cmdline is appended to the kernel command line (notos.* options).
	Cmdline []string
	// Console receives every console line as it arrives.
	Console io.Writer
}

// KernelCmdline is what Boot appends to the kernel command line:
// Cmdline, and notos.modules= when the agent is stage 1 itself.
func (o Options) KernelCmdline() []string {
	if !o.AgentIsStage1 {
		return o.Cmdline
	}
	return append([]string{"notos.modules=" + strings.Join(o.modules(), ",")}, o.Cmdline...)
}

func (o Options) modules() []string {
	if o.Modules == nil {
		return DefaultModules
	}
	return o.Modules
}

// Build assembles the guest's initramfs for the kernel k.
func Build(t vm.TB, k *vm.Kernel, o Options) *vm.Initramfs {
	t.Helper()
	agent := o.Agent
	if agent == "" {
		tt, ok := t.(testing.TB)
		if !ok {
			t.Fatalf("guest: Options.Agent is needed outside a test")
		}
		agent = testenv.AgentBinary(tt)
	}
	r := vm.NewInitramfs(t)
	r.AddBusybox()
	r.AddRunit()
	r.Symlink("/init", "/sbin/runit")
	r.CopyFile("/bin/notos-agent", agent)
	// busybox has no blkid; util-linux's shows labels and types.
	if blkid, err := testenv.LookPath("blkid"); err == nil {
		r.AddHostBinary("/sbin/blkid", blkid)
	}
	r.AddModules(k, o.Compression, o.modules()...)
	r.WriteFile("/lib/vmtest.sh", []byte(vm.ShellHelpers), 0o644)

	r.WriteFile("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534:sshd privilege separation:/run/sshd:/bin/false\n"), 0o644)
	r.WriteFile("/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	// "*": no password can log in; "!" would lock the account, which
	// sshd without PAM refuses even for a key.
	r.WriteFile("/etc/shadow", []byte("root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n"), 0o600)
	if err := os.Chmod(r.HostPath("/root"), 0o700); err != nil {
		t.Fatalf("guest: chmod /root: %v", err)
	}
	r.Mkdir("/var/lib")
	r.Mkdir("/var/log")
	if o.AuthorizedKeys != "" {
		r.WriteFile("/etc/ssh/authorized_keys.d/root", []byte(o.AuthorizedKeys), 0o600)
	}

	switch {
	case o.Stage1Script != nil:
		r.WriteFile("/etc/runit/1", o.Stage1Script, 0o755)
	case o.AgentIsStage1:
		if len(o.RunArgs) > 0 {
			t.Fatalf("guest: AgentIsStage1: runit passes no arguments, RunArgs %q cannot be given", o.RunArgs)
		}
		r.Symlink("/etc/runit/1", "/bin/notos-agent")
		r.WriteFile("/etc/runit/1.local", script(stage1Local(o.Stage1)), 0o755)
	default:
		args := append([]string{"--modules", strings.Join(o.modules(), ",")}, o.RunArgs...)
		r.WriteFile("/etc/runit/1", script(stage1(args, o.Stage1)), 0o755)
	}
	r.WriteFile("/etc/runit/2", script(stage2), 0o755)
	r.WriteFile("/etc/runit/3", script(stage3), 0o755)
	r.WriteFile("/etc/runit/ctrlaltdel", script("vmtest ctrlaltdel received\n"), 0o755)
	r.Mkdir("/etc/service")

	services := map[string]string{}
	if o.SSHD {
		addSSHD(t, r)
		services["sshd"] = sshdRun
	}
	for name, run := range o.Services {
		services[name] = run
	}
	for name, run := range services {
		r.WriteFile("/etc/service/"+name+"/run", script(run), 0o755)
	}
	if o.NetKeeper {
		r.WriteFile("/etc/service/notos-net/run", Example(t, "runit/sv/notos-net/run"), 0o755)
	}
	return r
}

// script makes a busybox shell script with the marker helpers.
func script(body string) []byte {
	return []byte("#!/bin/sh\nPATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PATH\n. /lib/vmtest.sh\n" + body)
}

// stage1 is /etc/runit/1. The agent mounts /proc, /sys, /dev and /run
// itself; to report the entropy the kernel had before the agent ran, a
// private /proc is mounted and unmounted first, so the agent still finds
// nothing mounted. Stage 1 always exits 0: with 100, runit would skip
// stage 2.
func stage1(args []string, extra string) string {
	return `vmtest stage 1
mkdir -p /tmp/proc
if mount -t proc proc /tmp/proc; then
	vmtest entropy_before "$(cat /tmp/proc/sys/kernel/random/entropy_avail)"
	vmtest uptime_before_run "$(cut -d' ' -f1 /tmp/proc/uptime)"
	umount /tmp/proc
fi
notos-agent run ` + shellQuote(args) + `
vmtest run.exit $?
` + stage1Local(extra)
}

// stage1Local is the part of stage 1 after the agent: /etc/runit/1.local
// when the agent is /etc/runit/1.
func stage1Local(extra string) string {
	return `vmtest stage1 after-run
vmtest uptime_after_run "$(cut -d' ' -f1 /proc/uptime)"
vmtest entropy_after "$(cat /proc/sys/kernel/random/entropy_avail)"
# sshd's privilege separation directory, on the /run the agent mounted.
mkdir -p /run/sshd
chmod 0755 /run/sshd
# Debian's runit: stage 3 and power-off on ctrl-alt-del need this set.
touch /run/runit.stopit
chmod 100 /run/runit.stopit
` + extra + `
exit 0
`
}

// stage2 reports what stage 1 left, then supervises the services.
const stage2 = `vmtest stage 2
vmtest uptime_stage2 "$(cut -d' ' -f1 /proc/uptime)"
vmtest_run state cat /run/notos-agent/state.json
vmtest_run authorized_keys cat /etc/ssh/authorized_keys.d/root
vmtest_run hostname hostname
vmtest_run etc_hostname cat /etc/hostname
vmtest_run addr ip -4 addr
vmtest_run route ip -4 route
vmtest_run blkid blkid
vmtest_run kmsg sh -c 'dmesg | grep notos-agent'
vmtest entropy_avail "$(cat /proc/sys/kernel/random/entropy_avail)"
vmtest report done
exec runsvdir -P /etc/service
`

const stage3 = `vmtest stage 3
sv force-stop /etc/service/*
sv exit /etc/service/*
`

// shellQuote joins args as single-quoted shell words.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// sshdRun runs sshd in the foreground; a helper in the background tells
// the console when the port is open.
const sshdRun = `exec 2>&1
mkdir -p /run/sshd
chmod 0755 /run/sshd
(
	until netstat -ltn 2>/dev/null | grep -q ':22 '; do usleep 50000; done
	vmtest sshd listening
) &
exec /usr/sbin/sshd -D -e
`

// Example returns a file of the repository's examples/ directory, such
// as "runit/1" or "runit/sv/notos-net/run", so the guest runs what users
// copy. It is found from this source file's location: the source tree
// must be there (go test and go run have it).
func Example(t vm.TB, name string) []byte {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatalf("guest: cannot locate the source tree for examples/%s", name)
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "examples", filepath.FromSlash(name))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("guest: example: %v", err)
	}
	return b
}

// addSSHD installs the host's sshd with its libraries, the configuration
// and a fresh host key.
func addSSHD(t vm.TB, r *vm.Initramfs) {
	t.Helper()
	sshd, err := testenv.LookPath("sshd")
	if err != nil {
		t.Fatalf("guest: needs sshd (openssh-server) on the host")
	}
	r.AddHostBinary("/usr/sbin/sshd", sshd)
	priv, _ := KeyPair(t, "guest host key")
	r.WriteFile("/etc/ssh/ssh_host_ed25519_key", priv, 0o600)
	r.WriteFile("/etc/ssh/sshd_config", []byte(vm.SSHDConfig), 0o644)
}

// KeyPair makes an ed25519 key pair with ssh-keygen in a temporary
// directory and returns the private key file's contents and the public
// key line. Use KeyFiles for files a client can use.
func KeyPair(t vm.TB, comment string) (private, public []byte) {
	t.Helper()
	path := KeyFiles(t, comment)
	private, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("guest: %v", err)
	}
	public, err = os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatalf("guest: %v", err)
	}
	return private, public
}

// KeyFiles makes an ed25519 key pair with ssh-keygen and returns the
// private key's path (the public key is PATH.pub), for `ssh -i` and
// `notos-agent mkdrive --key PATH.pub`.
func KeyFiles(t vm.TB, comment string) string {
	t.Helper()
	keygen, err := testenv.LookPath("ssh-keygen")
	if err != nil {
		t.Fatalf("guest: needs ssh-keygen on the host")
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("guest: ssh-keygen -t ed25519 -f %s: %v\n%s", path, err, out)
	}
	return path
}

// RootDisk makes vda: an empty 16 MiB ext4 image labelled rootfs.
func RootDisk(t vm.TB) string {
	t.Helper()
	dir := t.TempDir()
	return vm.Ext4Image(t, dir, "rootfs", 16)
}

// Machine is a booted guest.
type Machine struct {
	*vm.VM
	// Started is when QEMU was started (after the image was built).
	Started time.Time
}

// Boot builds the guest, attaches vda (rootfs) and, when o.Drive is set,
// vdb, and starts QEMU on the user network. Requirements missing on the
// host skip the test (fail it under CI).
func Boot(ctx context.Context, t vm.TB, o Options) *Machine {
	t.Helper()
	if tt, ok := t.(testing.TB); ok {
		need := []string{"qemu-system-x86_64", "busybox", "runit", "runsvdir", "depmod", "mke2fs"}
		if o.SSHD {
			need = append(need, "sshd", "ssh-keygen")
		}
		testenv.RequireCommands(tt, need...)
	}
	k := vm.FetchKernel(t)
	initrd := Build(t, k, o).Pack()
	disks := []vm.Disk{{Path: RootDisk(t), Serial: "rootfs"}}
	if o.Drive != "" {
		disks = append(disks, vm.Disk{Path: o.Drive, ReadOnly: true, Serial: "config-2"})
	}
	n := &vm.Net{}
	if o.ForwardSSH {
		n.ForwardTCP = []int{22}
	}
	m := &Machine{Started: time.Now()}
	m.VM = vm.Boot(ctx, t, vm.Config{
		Kernel:    k.Vmlinuz,
		Initramfs: initrd,
		Cmdline:   o.KernelCmdline(),
		Disks:     disks,
		Net:       n,
		Console:   o.Console,
	})
	return m
}

// Report is what stage 2 printed about the guest.
type Report struct {
	// Stage2 is the host's time from QEMU's start to "VMTEST stage=2".
	Stage2 time.Duration
	// RunExit is `notos-agent run`'s exit status in stage 1 (empty when
	// the agent is /etc/runit/1: state.json has it).
	RunExit string
	// State is /run/notos-agent/state.json.
	State string
	// AuthorizedKeys is /etc/ssh/authorized_keys.d/root.
	AuthorizedKeys string
	// Hostname is the kernel's (hostname), EtcHostname /etc/hostname.
	Hostname, EtcHostname string
	// Addr and Route are busybox `ip -4 addr` and `ip -4 route`.
	Addr, Route []string
	// Kmsg are the kernel log's lines that name notos-agent (dmesg).
	Kmsg []string
	// Blkid is the host's blkid run in the guest: the disks' labels and
	// types (empty when the host has none).
	Blkid []string
	// Entropy is /proc/sys/kernel/random/entropy_avail before the agent
	// ran, after it, and in stage 2.
	EntropyBefore, EntropyAfter, EntropyStage2 string
	// Uptime is the guest's /proc/uptime in seconds before and after
	// the agent and at the start of stage 2.
	UptimeBeforeRun, UptimeAfterRun, UptimeStage2 string
	// Console is the console up to the end of the report.
	Console string
	// Results are all markers up to the end of the report.
	Results vm.Results
}

// WaitReport waits for stage 2 and its report, within ctx.
func (m *Machine) WaitReport(ctx context.Context) (*Report, error) {
	for {
		got, err := m.WaitValue(ctx, "stage")
		if err != nil {
			return nil, err
		}
		if got == "2" {
			break
		}
	}
	stage2 := time.Since(m.Started)
	if _, err := m.WaitValue(ctx, "report"); err != nil {
		return nil, err
	}
	console := m.Console()
	res := vm.ParseMarkers(console)
	join := func(name string) string {
		lines, ok := res.Blocks[name]
		if !ok {
			return ""
		}
		return strings.Join(lines, "\n") + "\n"
	}
	rep := &Report{
		Stage2:          stage2,
		RunExit:         res.Values["run.exit"],
		State:           join("state"),
		AuthorizedKeys:  join("authorized_keys"),
		Hostname:        strings.TrimSpace(join("hostname")),
		EtcHostname:     strings.TrimSpace(join("etc_hostname")),
		Addr:            slices.Clone(res.Blocks["addr"]),
		Route:           slices.Clone(res.Blocks["route"]),
		Blkid:           slices.Clone(res.Blocks["blkid"]),
		Kmsg:            slices.Clone(res.Blocks["kmsg"]),
		EntropyBefore:   res.Values["entropy_before"],
		EntropyAfter:    res.Values["entropy_after"],
		EntropyStage2:   res.Values["entropy_avail"],
		UptimeBeforeRun: res.Values["uptime_before_run"],
		UptimeAfterRun:  res.Values["uptime_after_run"],
		UptimeStage2:    res.Values["uptime_stage2"],
		Console:         console,
		Results:         res,
	}
	if res.Values["authorized_keys.exit"] != "0" {
		rep.AuthorizedKeys = ""
	}
	if res.Values["state.exit"] != "0" {
		return rep, fmt.Errorf("guest: cat /run/notos-agent/state.json failed in stage 2: %s", rep.State)
	}
	return rep, nil
}
