// Package vm boots a Linux kernel under QEMU for tier-2 tests: it builds an
// initramfs from a directory, starts qemu-system-x86_64 (TCG only) with
// virtio disks and a user-mode NIC, reads the serial console line by line
// and lets a test wait for a line with a deadline. QEMU always dies with
// the test: the process group is killed in t.Cleanup, and the kernel kills
// QEMU if the test binary itself dies (Pdeathsig).
//
// A test reads what the guest did from the console, where the guest prints
// markers (see ShellHelpers): "VMTEST key=value" lines and
// "VMTEST-BEGIN name" ... "VMTEST-END name" blocks.
//
// The pieces, in the order a test uses them:
//   - FetchKernel: Debian's cloud kernel and its module tree.
//   - NewInitramfs, then AddBusybox, AddAgent, AddModules (a subset with
//     its dependencies, optionally recompressed, indexed by depmod -b),
//     AddRunit, AddHostBinary (with its ldd libraries), WriteFile,
//     AddInit(InitScript(body)); Pack writes the cpio.
//   - Ext4Image, ISOImage, WriteTree: disks made from directories;
//     Ext4ReadFile reads what the guest wrote once it is off.
//   - Boot: QEMU with Config's disks and NIC; Wait, WaitValue, WaitBlock,
//     WaitExit; Monitor for QEMU's monitor (ctrl-alt-del, quit); HostPort
//     and SSHCommand to log in through a forwarded port.
//
// See Example for a whole test and the tests of this package for busybox,
// runit as PID 1 and sshd guests.
package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BaseCmdline starts every kernel command line: the console on the first
// serial port (QEMU's stdout), reboot at once on a panic (with -no-reboot
// QEMU then exits), and only errors and worse from the kernel (quiet:
// console_loglevel 4 prints levels 0 to 3), so its messages rarely land
// among the guest's own lines. Config.Cmdline is appended: "loglevel=5"
// there adds warnings and lines written to /dev/kmsg without a level
// (the default level is 4), "loglevel=7" everything.
const BaseCmdline = "console=ttyS0 panic=-1 quiet"

// Config describes one virtual machine.
type Config struct {
	Kernel    string   // bzImage (Kernel.Vmlinuz)
	Initramfs string   // newc cpio (Initramfs.Pack)
	Cmdline   []string // appended to BaseCmdline
	MemoryMiB int      // default 512
	// Disks become virtio-blk PCI devices in this order: the first one the
	// guest probes is vda, the second vdb.
	Disks []Disk
	// Net, when set, adds a virtio-net NIC on QEMU's user-mode network
	// (guest 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3, a built-in DHCP
	// server).
	Net *Net
	// Console, when set, receives every console line as it arrives (a
	// live view for a demo, or a log file).
	Console io.Writer
	// ExtraArgs are appended to QEMU's arguments as they are.
	ExtraArgs []string
}

// Disk is an image file attached as a virtio-blk disk.
type Disk struct {
	Path     string
	Format   string // "raw" when empty
	ReadOnly bool
	Serial   string // shown in /sys/block/vdX/serial (at most 20 bytes)
}

// Net is a virtio-net NIC on QEMU's user-mode network.
type Net struct {
	MAC string // 52:54:00:12:34:56 when empty
	// ForwardTCP lists guest TCP ports reachable from the host on
	// 127.0.0.1 at a free port each; VM.HostPort tells which.
	ForwardTCP []int
	// UserOptions are added to "-netdev user,..." as they are, for the
	// guest side: "net=10.0.3.0/24", "dhcpstart=10.0.3.20", "restrict=on".
	UserOptions []string
}

// VM is a running QEMU. Its console is read into memory line by line.
type VM struct {
	t         TB
	cmd       *exec.Cmd
	start     time.Time
	hostPorts map[int]int
	monitor   string // QEMU's human monitor (HMP) socket
	stderr    lockedBuffer
	done      chan struct{} // closed when QEMU has exited and its output is read

	mu          sync.Mutex
	lines       []string
	cursor      int           // next line Wait looks at
	changed     chan struct{} // closed (and replaced) when lines or exited change
	exited      bool
	exitErr     error
	firstMarker time.Duration
	killOnce    sync.Once
}

var panicLine = regexp.MustCompile(`Kernel panic - not syncing`)

// Boot starts QEMU; the VM is killed when ctx ends or the test ends. It
// fails the test when QEMU cannot start and skips it (fails under CI) when
// qemu-system-x86_64 is missing.
func Boot(ctx context.Context, t TB, cfg Config) *VM {
	t.Helper()
	qemu := requireCommands(t, "qemu-system-x86_64")["qemu-system-x86_64"]
	v := &VM{t: t, hostPorts: map[int]int{}, changed: make(chan struct{}), done: make(chan struct{})}
	// A socket path must fit in sun_path (108 bytes): t.TempDir() of a
	// subtest with a long name may not.
	sockDir, err := os.MkdirTemp("", "vm-")
	if err != nil {
		t.Fatalf("vm: make a directory for the monitor socket: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	v.monitor = filepath.Join(sockDir, "monitor")
	args, err := v.args(cfg)
	if err != nil {
		t.Fatalf("vm: %v", err)
	}
	v.cmd = exec.CommandContext(ctx, qemu, args...)
	// QEMU and anything it starts form one process group, killed whole.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	v.cmd.Cancel = func() error { return syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL) }
	v.cmd.Stderr = &v.stderr
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("vm: stdout pipe for %s: %v", qemu, err)
	}
	t.Logf("vm: %s %s", qemu, strings.Join(args, " "))
	v.start = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("vm: start %s: %v", qemu, err)
	}
	t.Cleanup(func() {
		v.Kill()
		if t.Failed() {
			t.Logf("vm: last 100 console lines:\n%s", v.tail(100))
			if s := v.stderr.String(); s != "" {
				t.Logf("vm: QEMU stderr:\n%s", s)
			}
		}
	})
	go v.read(stdout, cfg.Console)
	return v
}

func (v *VM) args(cfg Config) ([]string, error) {
	mem := cfg.MemoryMiB
	if mem == 0 {
		mem = 512
	}
	cmdline := strings.Join(append([]string{BaseCmdline}, cfg.Cmdline...), " ")
	args := []string{
		// KVM is not usable on the hosts this runs on: TCG, always.
		"-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", strconv.Itoa(mem),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio", "-monitor", "unix:" + v.monitor + ",server=on,wait=off",
		"-kernel", cfg.Kernel, "-initrd", cfg.Initramfs, "-append", cmdline,
	}
	for i, d := range cfg.Disks {
		format := d.Format
		if format == "" {
			format = "raw"
		}
		drive := fmt.Sprintf("file=%s,format=%s,if=none,id=disk%d", qemuEscape(d.Path), format, i)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		dev := fmt.Sprintf("virtio-blk-pci,drive=disk%d", i)
		if d.Serial != "" {
			dev += ",serial=" + qemuEscape(d.Serial)
		}
		args = append(args, "-drive", drive, "-device", dev)
	}
	if n := cfg.Net; n != nil {
		netdev := "user,id=net0"
		for _, guest := range n.ForwardTCP {
			host, err := freePort()
			if err != nil {
				return nil, err
			}
			v.hostPorts[guest] = host
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", host, guest)
		}
		for _, o := range n.UserOptions {
			netdev += "," + o
		}
		mac := n.MAC
		if mac == "" {
			mac = "52:54:00:12:34:56"
		}
		args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,mac="+mac)
	}
	return append(args, cfg.ExtraArgs...), nil
}

// qemuEscape doubles commas, QEMU's escape inside an option value.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another
// process may take it before QEMU binds it; QEMU then fails to start and
// says so on stderr.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listen on 127.0.0.1:0 for a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// read collects console lines until QEMU closes its stdout, then reaps it.
func (v *VM) read(stdout io.Reader, copyTo io.Writer) {
	br := bufio.NewReader(stdout)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if copyTo != nil {
				io.WriteString(copyTo, line)
			}
			v.addLine(strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			break
		}
	}
	err := v.cmd.Wait()
	v.mu.Lock()
	v.exited, v.exitErr = true, err
	v.broadcast()
	v.mu.Unlock()
	close(v.done)
}

func (v *VM) addLine(line string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lines = append(v.lines, line)
	if v.firstMarker == 0 && strings.HasPrefix(line, "VMTEST") {
		v.firstMarker = time.Since(v.start)
		v.t.Logf("vm: first marker %.2fs after QEMU started: %s", v.firstMarker.Seconds(), line)
	}
	v.broadcast()
}

// broadcast wakes every waiter; v.mu is held.
func (v *VM) broadcast() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// ErrExited is returned by a wait when QEMU exited before the line came.
var ErrExited = errors.New("QEMU exited")

// next returns the console line after the cursor and moves past it,
// waiting for it until ctx ends or QEMU exits.
func (v *VM) next(ctx context.Context) (string, error) {
	for {
		v.mu.Lock()
		if v.cursor < len(v.lines) {
			line := v.lines[v.cursor]
			v.cursor++
			v.mu.Unlock()
			return line, nil
		}
		if v.exited {
			err := v.exitErr
			v.mu.Unlock()
			if err != nil {
				// QEMU's own complaint (a bad option, a port taken).
				return "", fmt.Errorf("%w (%v): %s", ErrExited, err, strings.TrimSpace(v.stderr.String()))
			}
			return "", ErrExited
		}
		changed := v.changed
		v.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// Wait reads console lines from where the previous wait stopped until one
// matches re and returns its submatches. Lines are consumed: waits see the
// console in order. It fails at once on a kernel panic line, when QEMU
// exits first (ErrExited) and when ctx ends.
func (v *VM) Wait(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	for {
		line, err := v.next(ctx)
		if err != nil {
			return nil, fmt.Errorf("vm: wait for /%s/ on the console: %w", re, err)
		}
		if m := re.FindStringSubmatch(line); m != nil {
			return m, nil
		}
		if panicLine.MatchString(line) {
			return nil, fmt.Errorf("vm: wait for /%s/ on the console: %s", re, line)
		}
	}
}

// WaitValue waits for the marker "VMTEST key=value" and returns value.
func (v *VM) WaitValue(ctx context.Context, key string) (string, error) {
	m, err := v.Wait(ctx, regexp.MustCompile(`^`+regexp.QuoteMeta(markerValue+key+"=")+`(.*)$`))
	if err != nil {
		return "", err
	}
	return m[1], nil
}

// WaitBlock waits for the block "VMTEST-BEGIN name" ... "VMTEST-END name"
// and returns the lines between the markers.
func (v *VM) WaitBlock(ctx context.Context, name string) ([]string, error) {
	if _, err := v.Wait(ctx, regexp.MustCompile(`^`+regexp.QuoteMeta(markerBegin+name)+`$`)); err != nil {
		return nil, err
	}
	lines := []string{}
	for {
		line, err := v.next(ctx)
		if err != nil {
			return nil, fmt.Errorf("vm: read block %s from the console: %w", name, err)
		}
		if line == markerEnd+name {
			return lines, nil
		}
		lines = append(lines, line)
	}
}

// WaitExit waits until QEMU exits (the guest powered off or rebooted) and
// returns an error when it exited with a failure status, when the kernel
// panicked, or when ctx ended first.
func (v *VM) WaitExit(ctx context.Context) error {
	select {
	case <-v.done:
	case <-ctx.Done():
		return fmt.Errorf("vm: wait for QEMU to exit: %w", ctx.Err())
	}
	v.t.Logf("vm: QEMU exited %.2fs after it started", time.Since(v.start).Seconds())
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.exitErr != nil {
		return fmt.Errorf("vm: QEMU exited: %w: %s", v.exitErr, strings.TrimSpace(v.stderr.String()))
	}
	for _, l := range v.lines {
		if panicLine.MatchString(l) {
			return fmt.Errorf("vm: the guest kernel panicked: %s", l)
		}
	}
	return nil
}

// Kill kills QEMU's process group and waits until its output is read. It
// is safe to call more than once and after QEMU has exited.
func (v *VM) Kill() {
	v.killOnce.Do(func() {
		select {
		case <-v.done:
			return
		default:
		}
		// ESRCH: QEMU exited between the check and the kill.
		if err := syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			v.t.Errorf("vm: kill QEMU process group %d: %v", v.cmd.Process.Pid, err)
		}
	})
	<-v.done
}

// Monitor runs a command on QEMU's human monitor and returns its output:
// "system_powerdown" (ACPI power button), "sendkey ctrl-alt-delete" (runit
// as PID 1 gets SIGINT), "quit", "info network".
func (v *VM) Monitor(ctx context.Context, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", v.monitor)
	if err != nil {
		return "", fmt.Errorf("vm: dial QEMU monitor %s: %w", v.monitor, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReader(conn)
	// The monitor greets with a banner and a prompt, and answers each
	// command with its echo, its output and the next prompt.
	const prompt = "(qemu) "
	if _, err := readUntil(br, prompt); err != nil {
		return "", fmt.Errorf("vm: read QEMU monitor greeting: %w", err)
	}
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", fmt.Errorf("vm: send %q to QEMU monitor: %w", command, err)
	}
	out, err := readUntil(br, prompt)
	if err != nil && !(errors.Is(err, io.EOF) && command == "quit") {
		return "", fmt.Errorf("vm: read QEMU monitor answer to %q: %w", command, err)
	}
	// Drop the echoed command line (with its terminal escapes).
	if _, rest, ok := strings.Cut(out, "\n"); ok {
		out = rest
	}
	return strings.TrimSpace(strings.ReplaceAll(out, "\r", "")), nil
}

// readUntil reads until the text ends with suffix and returns it without.
func readUntil(br *bufio.Reader, suffix string) (string, error) {
	var b strings.Builder
	for !strings.HasSuffix(b.String(), suffix) {
		c, err := br.ReadByte()
		if err != nil {
			return b.String(), err
		}
		b.WriteByte(c)
	}
	return strings.TrimSuffix(b.String(), suffix), nil
}

// HostPort is the host port on 127.0.0.1 forwarded to a guest TCP port
// listed in Net.ForwardTCP, 0 for any other.
func (v *VM) HostPort(guestPort int) int { return v.hostPorts[guestPort] }

// Console returns every console line so far.
func (v *VM) Console() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return strings.Join(v.lines, "\n") + "\n"
}

// Results parses the markers in the console so far.
func (v *VM) Results() Results { return ParseMarkers(v.Console()) }

// BootTime is the time from QEMU's start to the first marker line on the
// console (0 before it appears): the kernel's boot plus /init's start.
func (v *VM) BootTime() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.firstMarker
}

func (v *VM) tail(n int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	lines := v.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockedBuffer is a bytes.Buffer safe for QEMU's stderr copier and readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
