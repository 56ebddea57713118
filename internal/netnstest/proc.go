package netnstest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Proc is a running program whose output is collected line by line, so a
// test waits for a line to appear instead of sleeping.
type Proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and its output is read
	err  error         // the exit status, set before done is closed

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

// StartProc starts cmd and collects what it writes to whichever of its
// stdout and stderr the caller left nil (both, usually). name says which
// program it is in errors.
func StartProc(name string, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{name: name, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe for %s's output: %w", name, err)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = pw
	}
	if cmd.Stderr == nil {
		cmd.Stderr = pw
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pw.Close() // the child holds its own copy: EOF comes when it exits
	go p.read(pr)
	return p, nil
}

// read collects the output until the process closes its end, then reaps it.
func (p *Proc) read(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	p.err = p.cmd.Wait()
	close(p.done)
}

// Lines returns a copy of the output so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Count returns how many lines so far contain substr.
func (p *Proc) Count(substr string) int {
	n := 0
	for _, l := range p.Lines() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// WaitCount waits until at least n lines contain substr: a program may log
// what it did a moment after its peer has seen it done. It wakes on each new
// line and gives up after timeout or when the process exits.
func (p *Proc) WaitCount(timeout time.Duration, substr string, n int) error {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		got := p.Count(substr)
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if got = p.Count(substr); got >= n {
				return nil
			}
			return fmt.Errorf("%s exited (%v) with %d lines holding %q, want %d", p.name, p.err, got, substr, n)
		case <-deadline:
			return fmt.Errorf("%s printed %d lines holding %q within %s, want %d", p.name, got, substr, timeout, n)
		}
	}
}

// WaitFor waits until a line contains substr, and returns that line. It
// wakes on each new line, not on a timer, and gives up after timeout or
// when the process exits.
func (p *Proc) WaitFor(timeout time.Duration, substr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.WaitForContext(ctx, substr)
}

// WaitForContext is WaitFor with a context.
func (p *Proc) WaitForContext(ctx context.Context, substr string) (string, error) {
	seen := 0
	for {
		p.mu.Lock()
		lines, changed := p.lines[seen:], p.changed
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, substr) {
				return l, nil
			}
		}
		select {
		case <-changed:
		case <-p.done:
			// The last lines may have arrived with the exit.
			for _, l := range p.Lines()[seen:] {
				if strings.Contains(l, substr) {
					return l, nil
				}
			}
			return "", fmt.Errorf("%s exited (%v) before printing %q", p.name, p.err, substr)
		case <-ctx.Done():
			return "", fmt.Errorf("wait for %s to print %q: %w", p.name, substr, ctx.Err())
		}
	}
}

// Done is closed when the process has exited and its output is read.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit status (nil for exit 0); valid once Done is closed.
func (p *Proc) Err() error { return p.err }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends sig and waits for the exit, up to grace, then SIGKILL.
// Stopping an exited process is harmless. It returns an error only when
// the process had to be killed; the exit status is Err.
func (p *Proc) Stop(sig os.Signal, grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s (pid %d) ignored %v for %s: killed", p.name, p.cmd.Process.Pid, sig, grace)
	}
}
