package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/notos-agent/notos-agent/agent"
	"github.com/notos-agent/notos-agent/configdrive"
)

// driveFlags adds the flags that say where the config drive is.
func driveFlags(fs *flag.FlagSet) *configdrive.Options {
	o := &configdrive.Options{}
	fs.StringVar(&o.Drive, "drive", "", "read this device or image file instead of searching by label")
	fs.StringVar(&o.Label, "label", "config-2", "filesystem label of the drive (matched case-insensitively)")
	fs.DurationVar(&o.Wait, "drive-wait", 5*time.Second, "how long to wait for the drive to appear")
	return o
}

// usageError reports a bad argument and the command's usage: exit 2.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "notos-agent %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return 2
}

// loadDrive parses a drive command's arguments (it takes no operands),
// then finds and reads the drive. When it returns nil the command stops
// with the exit status code: 0 after --help, 2 on a usage error, 1 when
// the drive cannot be read.
func loadDrive(fs *flag.FlagSet, o *configdrive.Options, args []string, stdout, stderr io.Writer) (md *configdrive.Metadata, code int) {
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return nil, code
	}
	if fs.NArg() > 0 {
		return nil, usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	md, err := configdrive.Load(context.Background(), *o)
	if err != nil {
		return nil, fail(stderr, "drive", err)
	}
	return md, 0
}

func cmdKeys(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("keys", "[--drive PATH] [--label L] [--drive-wait D] [--root DIR] [--user NAME] [--no-hostname]",
		"Find the config drive, read it, install its SSH keys in\n"+
			"ROOT/etc/ssh/authorized_keys.d/USER and set the host name (ROOT/etc/hostname,\n"+
			"and the kernel's when ROOT is /). Prints one summary line. A drive without a\n"+
			"valid key leaves the existing key file untouched.", stderr)
	drive := driveFlags(fs)
	root := fs.String("root", "/", "root directory of the system to provision (another root: files only)")
	user := fs.String("user", "root", "the login whose keys are written")
	noHostname := fs.Bool("no-hostname", false, "leave the host name alone")
	md, code := loadDrive(fs, drive, args, stdout, stderr)
	if md == nil {
		return code
	}
	// The keys and the host name are independent: they are written at
	// the same time so that their fsyncs share the disk's flushes, which
	// are most of a fresh install's time.
	host := make(chan hostnameOutcome, 1)
	if *noHostname {
		host <- hostnameOutcome{skipped: true}
	} else {
		go installHostname(md, *root, host)
	}
	kr, kerr := agent.InstallKeys(md, agent.KeysOptions{Root: *root, User: *user})
	h := <-host

	var summary []string
	if kerr != nil {
		code = fail(stderr, "keys", kerr)
		summary = append(summary, "keys: failed")
	} else {
		for _, w := range kr.Warnings {
			fmt.Fprintf(stderr, "notos-agent: keys: warning: %s\n", w)
		}
		summary = append(summary, "keys: "+kr.Summary())
	}
	switch {
	case h.skipped:
	case h.err != nil:
		code = fail(stderr, "hostname", h.err)
		summary = append(summary, "hostname: failed")
	default:
		summary = append(summary, "hostname: "+h.res.Summary())
	}
	fmt.Fprintf(stdout, "notos-agent: %s\n", strings.Join(summary, "; "))
	return code
}

type hostnameOutcome struct {
	res     agent.HostnameResult
	err     error
	skipped bool
}

// installHostname runs agent.InstallHostname for cmdKeys' goroutine; a
// panic becomes an error instead of killing the process.
func installHostname(md *configdrive.Metadata, root string, out chan<- hostnameOutcome) {
	defer func() {
		if p := recover(); p != nil {
			out <- hostnameOutcome{err: fmt.Errorf("panic: %v", p)}
		}
	}()
	res, err := agent.InstallHostname(md, agent.HostnameOptions{Root: root})
	out <- hostnameOutcome{res: res, err: err}
}
