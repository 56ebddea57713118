package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/notos-agent/notos-agent/agent"
)

// commaList is a comma-separated list that may also be repeated:
// --iface eth0 --iface eth1 and --iface eth0,eth1 say the same. Given at
// all, even empty, it is non-nil: a flag set to nothing overrides the
// kernel command line.
type commaList struct{ list *[]string }

func (l commaList) String() string {
	if l.list == nil {
		return ""
	}
	return strings.Join(*l.list, ",")
}

func (l commaList) Set(s string) error {
	if *l.list == nil {
		*l.list = []string{}
	}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l.list = append(*l.list, item)
		}
	}
	return nil
}

const runArgs = "[--root DIR] [--timeout D] [--drive-wait D] [--drive PATH] [--label L] [--modules LIST] [--modules-dir DIR] [--iface NAME]... [--net MODE] [--skip LIST] [--userdata-wait D] [--user NAME] [--quiet] [--verbose]"

// runFlags parses run's flags into agent.Options. Settings the kernel
// command line can also give stay zero unless given here, so that
// notos.* parameters apply under them.
func runFlags(args []string, stdout, stderr io.Writer) (agent.Options, int, bool) {
	fs := newFlags("run", runArgs,
		"Provision this machine, as runit's stage 1 does at boot: mount /proc, /sys,\n"+
			"/dev and /run if missing, read notos.* options from the kernel command line,\n"+
			"load modules, read the config drive while the links come up, seed the kernel's\n"+
			"random pool, install SSH keys and the host name, configure the network, save\n"+
			"(and once per instance run) user_data, and write /run/notos-agent/state.json.\n"+
			"Every step runs even when an earlier one failed; all of it within --timeout.\n"+
			"Exit 0 when every step that applied succeeded, 1 otherwise (never 100).\n"+
			"Steps: "+strings.Join(agent.StepNames, ", ")+".", stderr)
	var o agent.Options
	fs.StringVar(&o.Root, "root", "/", "root directory of the system to provision (another root: files only, the kernel is left alone)")
	timeout := fs.Duration("timeout", agent.DefaultTimeout, "overall deadline (notos.timeout=)")
	fs.DurationVar(&o.DriveWait, "drive-wait", agent.DefaultDriveWait, "how long to wait for the config drive to appear")
	fs.StringVar(&o.Drive, "drive", "", "read this device or image file instead of searching by label")
	label := fs.String("label", agent.DefaultLabel, "filesystem label of the drive (notos.label=)")
	fs.Var(commaList{&o.Modules}, "modules", "comma-separated modules to load besides "+strings.Join(agent.DefaultModules, ", ")+" (notos.modules=)")
	fs.StringVar(&o.ModulesDir, "modules-dir", "", "module tree to use (default: $MODULE_DIR, /lib/modules/RELEASE, /usr/lib/modules/RELEASE, NixOS's)")
	fs.Var(commaList{&o.Ifaces}, "iface", "link to configure, repeatable (notos.iface=); default: the metadata's links, else every Ethernet link")
	netMode := fs.String("net", agent.DefaultNet, "network mode: "+strings.Join(agent.NetModes, ", ")+" (notos.net=)")
	fs.Var(commaList{&o.Skip}, "skip", "comma-separated steps to skip (notos.skip=)")
	fs.DurationVar(&o.UserDataWait, "userdata-wait", 0, "how long to wait for a user_data script (0: start it and go on)")
	fs.StringVar(&o.User, "user", agent.DefaultUser, "the login whose SSH keys are written")
	fs.BoolVar(&o.Quiet, "quiet", false, "print only failures on stderr (the kernel log gets every line)")
	fs.BoolVar(&o.Verbose, "verbose", false, "also print each change and warning")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return o, code, false
	}
	if fs.NArg() > 0 {
		return o, usageError(fs, stderr, "unexpected argument %q", fs.Arg(0)), false
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "timeout":
			o.Timeout = *timeout
		case "label":
			o.Label = *label
		case "net":
			o.Net = *netMode
		}
	})
	if err := checkRunOptions(o); err != nil {
		return o, usageError(fs, stderr, "%v", err), false
	}
	o.Version = version
	o.Stderr = stderr
	return o, 0, true
}

// checkRunOptions rejects flag values the kernel command line would have
// ignored with a warning: on the command line they are a usage error.
func checkRunOptions(o agent.Options) error {
	var words []string
	if o.Net != "" {
		words = append(words, "notos.net="+o.Net)
	}
	if o.Skip != nil {
		words = append(words, "notos.skip="+strings.Join(o.Skip, ","))
	}
	if o.Modules != nil {
		words = append(words, "notos.modules="+strings.Join(o.Modules, ","))
	}
	if o.Ifaces != nil {
		words = append(words, "notos.iface="+strings.Join(o.Ifaces, ","))
	}
	if o.Label != "" {
		words = append(words, `"notos.label=`+o.Label+`"`)
	}
	if c := agent.ParseCmdline(strings.Join(words, " ")); len(c.Warnings) > 0 {
		msg := strings.ReplaceAll(strings.Join(c.Warnings, "; "), "notos.", "--")
		return fmt.Errorf("%s", strings.ReplaceAll(msg, " ignored", ""))
	}
	if o.Timeout < 0 || o.DriveWait < 0 || o.UserDataWait < 0 {
		return fmt.Errorf("durations must not be negative")
	}
	return nil
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	o, code, ok := runFlags(args, stdout, stderr)
	if !ok {
		return code
	}
	return runAgent(o, stderr)
}

// runAgent runs the steps. agent.Run recovers the steps' panics itself;
// this is the last guard, so that stage 1 never dies of one.
func runAgent(o agent.Options, stderr io.Writer) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "notos-agent: run: panic: %v\n", p)
			code = 1
		}
	}()
	_, code = agent.Run(context.Background(), o)
	return code
}

// stageOne is the program started as runit's /etc/runit/1: run, then
// exec /etc/runit/1.local when there is one, so an image keeps its own
// stage-1 steps. Its exit status becomes stage 1's.
func stageOne(args []string, stdout, stderr io.Writer) int {
	o, code, ok := runFlags(args, stdout, stderr)
	if ok {
		code = runAgent(o, stderr)
	}
	local, ok := agent.LocalStageOne(o.Root)
	if !ok {
		return code
	}
	err := syscall.Exec(local, []string{local}, os.Environ())
	// Only reached when exec failed: stage 1 goes on without it.
	fmt.Fprintf(stderr, "notos-agent: exec %s: %v\n", local, err)
	return 1
}
