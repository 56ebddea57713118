package agent

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Logger writes one line per step to stderr and to the kernel log
// (/dev/kmsg), so that a cloud's console shows what happened at boot.
type Logger struct {
	Stderr io.Writer
	// Kmsg receives each line as one write, prefixed with its syslog
	// level ("<6>"). When nil, KmsgPath is opened for each line (at boot,
	// /dev is mounted by the first step); when that fails, the line goes
	// without. One open per line, as `echo >/dev/kmsg` in a stage-1
	// script does: the kernel rate-limits each open file to 10 records in
	// 5 seconds (printk.devkmsg=ratelimit), fewer than one run's lines.
	Kmsg     io.Writer
	KmsgPath string
	// Quiet keeps everything but failures off stderr (the kernel log
	// still gets every line); Verbose adds warnings and details.
	Quiet, Verbose bool

	mu sync.Mutex
}

// Kernel log levels (include/linux/kern_levels.h).
const (
	kmsgWarning = 4
	kmsgInfo    = 6
	kmsgDebug   = 7
)

// SetVerbose changes verbosity (notos.debug is read after the first step).
func (l *Logger) SetVerbose(v bool) {
	l.mu.Lock()
	l.Verbose = v
	l.mu.Unlock()
}

// writeKmsg writes one record to the kernel log. Errors (no /dev/kmsg
// under a test root, no permission, a full ring) are ignored: the kernel
// log is a courtesy, never a reason to fail.
func (l *Logger) writeKmsg(record []byte) {
	if l.Kmsg != nil {
		l.Kmsg.Write(record)
		return
	}
	if l.KmsgPath == "" {
		return
	}
	f, err := os.OpenFile(l.KmsgPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	f.Write(record)
	f.Close()
}

// Step logs a finished step: "notos-agent: keys: 2 keys installed in
// /etc/ssh/authorized_keys.d/root (1.3ms)".
func (l *Logger) Step(res StepResult) {
	line := stepLine(res)
	level := kmsgInfo
	if res.Outcome == Failed || res.Outcome == Abandoned {
		level = kmsgWarning
	}
	l.line(level, !l.Quiet || level == kmsgWarning, line)
	for _, w := range res.Warnings {
		l.line(kmsgWarning, l.verbose(), res.Name+": warning: "+w)
	}
	for _, c := range res.Changes {
		l.line(kmsgDebug, l.verbose(), res.Name+": changed: "+c)
	}
}

// Printf logs a line that is not a step's result, at info level.
func (l *Logger) Printf(format string, args ...any) {
	l.line(kmsgInfo, !l.Quiet, fmt.Sprintf(format, args...))
}

// Debugf logs a detail shown with --verbose only.
func (l *Logger) Debugf(format string, args ...any) {
	l.line(kmsgDebug, l.verbose(), fmt.Sprintf(format, args...))
}

func (l *Logger) verbose() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Verbose
}

// line writes "notos-agent: text" to stderr when show is set, and always to
// the kernel log, one write per line as /dev/kmsg requires. Write errors
// are ignored: logging must never stop the boot.
func (l *Logger) line(level int, show bool, text string) {
	text = strings.ReplaceAll(strings.TrimRight(text, "\n"), "\n", " | ")
	l.mu.Lock()
	defer l.mu.Unlock()
	if show && l.Stderr != nil {
		fmt.Fprintf(l.Stderr, "notos-agent: %s\n", text)
	}
	if level != kmsgDebug || l.Verbose {
		l.writeKmsg([]byte(fmt.Sprintf("<%d>notos-agent: %s\n", level, text)))
	}
}

// stepLine is a step's log line without the "notos-agent: " prefix.
func stepLine(res StepResult) string {
	var b strings.Builder
	b.WriteString(res.Name)
	b.WriteString(": ")
	switch res.Outcome {
	case OK:
		if res.Summary == "" {
			b.WriteString("ok")
		}
	case Skipped:
		b.WriteString("skipped")
		if res.Summary != "" {
			b.WriteString(": ")
		}
	default:
		b.WriteString(string(res.Outcome))
		if res.Error != "" {
			b.WriteString(": " + res.Error)
		}
		if res.Summary != "" {
			b.WriteString("; ")
		}
	}
	b.WriteString(res.Summary)
	fmt.Fprintf(&b, " (%s)", roundDuration(res.Duration))
	return b.String()
}

// roundDuration keeps two or three significant digits: 1.3ms, 5.0s, 12µs.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
