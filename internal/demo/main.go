// Command demo is `make demo` once scripts/demo.sh has installed what it
// needs and built the agent: it makes a throwaway SSH key and a
// DigitalOcean-style config drive with `notos-agent mkdrive`, boots the
// not-os-like guest of internal/guest under QEMU (TCG) with that drive as
// vdb, shows the agent's console lines as they come, logs in with ssh to
// run `hostname; ip -4 addr; notos-agent status`, and shuts the guest down
// (with -interactive, it leaves it running until Ctrl-C).
//
// It runs from the module's root (the kernel is found through
// scripts/fetch-kernel.sh there).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/notos-agent/notos-agent/internal/guest"
	"github.com/notos-agent/notos-agent/internal/vm"
)

const hostname = "notos-demo"

func main() {
	agentBin := flag.String("agent", "bin/notos-agent", "static notos-agent binary to put in the guest")
	interactive := flag.Bool("interactive", false, "leave the VM running and print the ssh command; Ctrl-C stops it")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up on the boot and login after this long")
	flag.Parse()

	// A reader that goes away (make demo | head) must not kill the demo
	// before it has stopped QEMU and removed its files.
	signal.Ignore(syscall.SIGPIPE)
	d := &demo{start: time.Now()}
	code := d.run(*agentBin, *interactive, *timeout)
	d.cleanup()
	os.Exit(code)
}

// demo is the harness's vm.TB outside go test: a Fatalf stops the demo
// (through a panic that run recovers), cleanups run in reverse order.
type demo struct {
	start    time.Time
	mu       sync.Mutex
	failed   bool
	cleanups []func()
	tmp      string
}

type fatal struct{}

func (d *demo) Helper()                         {}
func (d *demo) Logf(format string, args ...any) { d.say("  "+format, args...) }
func (d *demo) Errorf(format string, args ...any) {
	d.mu.Lock()
	d.failed = true
	d.mu.Unlock()
	d.say("error: "+format, args...)
}
func (d *demo) Fatalf(format string, args ...any) {
	d.Errorf(format, args...)
	panic(fatal{})
}
func (d *demo) Failed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed
}
func (d *demo) Cleanup(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cleanups = append(d.cleanups, f)
}
func (d *demo) TempDir() string {
	dir, err := os.MkdirTemp(d.tmp, "")
	if err != nil {
		d.Fatalf("make a temporary directory: %v", err)
	}
	return dir
}

func (d *demo) cleanup() {
	d.mu.Lock()
	fs := d.cleanups
	d.cleanups = nil
	d.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// say prints a step of the demo with the time since it started.
func (d *demo) say(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Printf("[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run(agentBin string, interactive bool, timeout time.Duration) (code int) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatal); !ok {
				panic(r)
			}
			code = 1
		}
	}()
	tmp, err := os.MkdirTemp("", "notos-demo-")
	if err != nil {
		d.Fatalf("make a temporary directory: %v", err)
	}
	d.tmp = tmp
	d.Cleanup(func() { os.RemoveAll(tmp) })

	// QEMU lives until the demo shuts it down or ends (then it is
	// killed). Ctrl-C ends any wait, and with it the demo; in
	// interactive mode it asks for the shutdown.
	vmCtx, stopVM := context.WithCancel(context.Background())
	d.Cleanup(stopVM)
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, timeout)
	defer cancel()

	agentBin, err = filepath.Abs(agentBin)
	if err != nil {
		d.Fatalf("%v", err)
	}
	key := guest.KeyFiles(d, "demo@notos-agent")
	d.say("throwaway SSH key: %s", key)
	drive := filepath.Join(tmp, "config-2.iso")
	args := []string{"mkdrive", "-o", drive, "--digitalocean", "--key", key + ".pub", "--hostname", hostname}
	if out, err := exec.Command(agentBin, args...).CombinedOutput(); err != nil {
		d.Fatalf("notos-agent %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	d.say("config drive: notos-agent %s", strings.Join(args, " "))

	d.say("booting Debian's cloud kernel under QEMU (TCG): runit as PID 1, notos-agent in /etc/runit/1,")
	d.say("sshd and the lease keeper in stage 2, vda ext4 rootfs, vdb the config drive")
	con := &console{d: d, started: make(chan struct{})}
	m := guest.Boot(vmCtx, d, guest.Options{
		Agent:      agentBin,
		Drive:      drive,
		SSHD:       true,
		ForwardSSH: true,
		NetKeeper:  true,
		Console:    con,
	})
	// The kernel prints nothing until runit starts (quiet): say that it
	// is still booting.
	go func() {
		for {
			select {
			case <-con.started:
				return
			case <-ctx.Done():
				return
			case <-time.After(3 * time.Second):
				d.say("  kernel booting (%.0fs)", time.Since(m.Started).Seconds())
			}
		}
	}()
	if _, err := m.WaitValue(ctx, "sshd"); err != nil {
		d.Fatalf("waiting for sshd in the guest: %v", err)
	}
	exit := make(chan error, 1)
	go func() { exit <- m.WaitExit(context.Background()) }()
	port := m.HostPort(22)
	remote := "hostname; ip -4 addr; notos-agent status"
	d.say("logging in: ssh -p %d root@127.0.0.1 '%s'", port, remote)
	out := d.login(ctx, m, key, remote)
	d.say("logged in %.1fs after QEMU started, with the key from the drive:", time.Since(m.Started).Seconds())
	fmt.Print(indent(out))

	if interactive {
		fmt.Printf(`
The VM is running. Log in with:

  ssh -i %s -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@127.0.0.1

Press Ctrl-C here to shut it down (the key and the drive are removed then).
`, key, port)
		select {
		case <-sigCtx.Done():
			fmt.Println()
		case err := <-exit:
			if err != nil {
				d.Fatalf("%v", err)
			}
			d.say("the guest powered off")
			d.say("done")
			return 0
		}
	}
	d.shutdown(m, exit)
	d.say("done")
	return 0
}

// login runs remote over ssh, retrying until sshd answers: QEMU's
// forwarded port accepts connections before the guest's sshd is ready.
func (d *demo) login(ctx context.Context, m *guest.Machine, key, remote string) string {
	for {
		out, err := vm.SSHCommand(ctx, m.HostPort(22), key, remote).CombinedOutput()
		if err == nil {
			return string(out)
		}
		if strings.Contains(string(out), "Permission denied") || ctx.Err() != nil {
			d.Fatalf("ssh: %v\n%s", err, out)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// shutdown presses ctrl-alt-del: runit runs stage 3, stops the services
// and powers off; QEMU exits (exit says how). It is killed if that does
// not happen within 30 s.
func (d *demo) shutdown(m *guest.Machine, exit <-chan error) {
	d.say("shutting down (ctrl-alt-del: runit's stage 3)")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.Monitor(ctx, "sendkey ctrl-alt-delete"); err != nil {
		d.Errorf("%v", err)
	}
	select {
	case err := <-exit:
		if err != nil {
			d.Errorf("%v", err)
		}
	case <-ctx.Done():
		d.Errorf("the guest did not power off within 30s: killing QEMU")
		m.Kill()
	}
}

// console shows the guest's console lines that tell the story: the
// agent's, the runit stages and sshd's logins. Each Write is one line.
type console struct {
	d       *demo
	once    sync.Once
	started chan struct{} // closed at the first line from runit's stage 1
}

func (c *console) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\r\n")
	if strings.HasPrefix(line, "VMTEST") {
		c.once.Do(func() { close(c.started) })
	}
	switch {
	case strings.HasPrefix(line, "notos-agent: "), strings.HasPrefix(line, "Accepted publickey"):
		c.d.say("  %s", line)
	case line == "VMTEST stage=1":
		c.d.say("  runit: stage 1 (/etc/runit/1 runs notos-agent run)")
	case strings.HasPrefix(line, "VMTEST run.exit="):
		c.d.say("  runit: notos-agent run exited %s", strings.TrimPrefix(line, "VMTEST run.exit="))
	case line == "VMTEST stage=2":
		c.d.say("  runit: stage 2 (runsvdir: sshd, notos-net)")
	case line == "VMTEST sshd=listening":
		c.d.say("  sshd: listening on port 22")
	case line == "VMTEST stage=3":
		c.d.say("  runit: stage 3")
	}
	return len(p), nil
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString("    " + line)
	}
	return b.String()
}
