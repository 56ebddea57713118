package netnstest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// Dnsmasq is a real dnsmasq serving DHCP on the server end of a pair.
type Dnsmasq struct {
	LeaseFile string // pass it to a second StartDnsmasq to keep the leases

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and its log is read
	err  error         // the exit status, set before done is closed

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

// StartDnsmasq runs dnsmasq in ns.Peer (the server namespace) bound to its
// veth end, in the foreground, logging to a buffer, with DNS disabled
// (--port=0), no ping before offering (--no-ping) and the lease file in a
// temporary directory. args are added as they are, typically
// "--dhcp-range=10.77.0.10,10.77.0.50,1h" and "--dhcp-option=...". A
// --dhcp-leasefile in args replaces the default one (to restart a server
// with its leases). It returns once dnsmasq says it has started; t.Cleanup
// stops it.
func StartDnsmasq(t testing.TB, ns *NS, args ...string) *Dnsmasq {
	t.Helper()
	bin := testenv.RequireCommands(t, "dnsmasq")["dnsmasq"]
	srv := ns.Peer
	d := &Dnsmasq{done: make(chan struct{}), changed: make(chan struct{})}
	dir := t.TempDir()
	d.LeaseFile = filepath.Join(dir, "leases")
	base := []string{
		"--no-daemon", "--no-ping", "--log-dhcp", "--log-facility=-",
		"--conf-file=/dev/null", "--port=0",
		"--interface=" + srv.Link, "--bind-interfaces",
		"--pid-file=" + filepath.Join(dir, "pid"),
		// As root, so that it can rewrite the lease file in a 0700
		// temporary directory after dropping privileges would not.
		"--user=root",
	}
	leaseGiven := false
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--dhcp-leasefile="); ok {
			leaseGiven, d.LeaseFile = true, v
		}
	}
	if !leaseGiven {
		base = append(base, "--dhcp-leasefile="+d.LeaseFile)
	}
	cmd := srv.Exec(bin, append(base, args...)...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe for dnsmasq's log: %v", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatalf("start dnsmasq in netns %s: %v", srv.Name, err)
	}
	pw.Close()
	d.cmd = cmd
	go d.read(pr)
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Logf("dnsmasq: %v", err)
		}
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", strings.Join(d.Lines(), "\n"))
		}
	})
	if _, err := d.WaitFor(5*time.Second, "started, version"); err != nil {
		t.Fatalf("dnsmasq in netns %s: %v\n%s", srv.Name, err, strings.Join(d.Lines(), "\n"))
	}
	return d
}

// read collects the log until the process closes its end, then reaps it.
func (d *Dnsmasq) read(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		d.mu.Lock()
		d.lines = append(d.lines, sc.Text())
		close(d.changed)
		d.changed = make(chan struct{})
		d.mu.Unlock()
	}
	d.err = d.cmd.Wait()
	close(d.done)
}

// Lines returns a copy of the log so far.
func (d *Dnsmasq) Lines() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines...)
}

// Count returns how many log lines so far contain substr.
func (d *Dnsmasq) Count(substr string) int {
	n := 0
	for _, l := range d.Lines() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// WaitFor waits until a log line contains substr, and returns that line.
// It wakes on each new line, not on a timer, and gives up after timeout or
// when dnsmasq exits.
func (d *Dnsmasq) WaitFor(timeout time.Duration, substr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.WaitForContext(ctx, substr)
}

// WaitForContext is WaitFor with a context.
func (d *Dnsmasq) WaitForContext(ctx context.Context, substr string) (string, error) {
	seen := 0
	for {
		d.mu.Lock()
		lines, changed := d.lines[seen:], d.changed
		seen = len(d.lines)
		d.mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, substr) {
				return l, nil
			}
		}
		select {
		case <-changed:
		case <-d.done:
			// The last lines may have arrived with the exit.
			for _, l := range d.Lines()[seen:] {
				if strings.Contains(l, substr) {
					return l, nil
				}
			}
			return "", fmt.Errorf("dnsmasq exited (%v) before logging %q", d.err, substr)
		case <-ctx.Done():
			return "", fmt.Errorf("wait for dnsmasq to log %q: %w", substr, ctx.Err())
		}
	}
}

// Stop ends dnsmasq with SIGTERM and waits for it to exit (up to 5s, then
// SIGKILL). Stopping twice is harmless.
func (d *Dnsmasq) Stop() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	// `ip netns exec` execs dnsmasq in its own process: the pid is dnsmasq's.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal dnsmasq (pid %d): %w", d.cmd.Process.Pid, err)
	}
	select {
	case <-d.done:
		return nil
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("dnsmasq (pid %d) ignored SIGTERM for 5s: killed", d.cmd.Process.Pid)
	}
}

// Done is closed when dnsmasq has exited.
func (d *Dnsmasq) Done() <-chan struct{} { return d.done }
