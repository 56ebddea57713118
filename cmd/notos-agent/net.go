package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/netcfg"
)

func cmdNet(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("net", "[--iface NAME]... [--root DIR] [--timeout D] [--net MODE] [--drive PATH | --label L] [--resolv-conf=write|skip] [--keep [--release]]",
		"Bring the network up: choose the links (--iface, else the metadata's, else\n"+
			"every physical Ethernet link), wait for them, and configure each one\n"+
			"statically from the config drive's metadata or by DHCP, as --net says.\n"+
			"Prints one line per link with what was applied and how long it took. Exit\n"+
			"0 when every chosen link is configured within --timeout, 1 otherwise.\n"+
			"The drive is read when --drive or --label is given, else looked for once\n"+
			"(no wait) in modes auto and static.\n\n"+
			"With --keep, stay in the foreground as the lease keeper (a runit stage-2\n"+
			"service): take over the saved leases, renew at T1, rebind at T2, start\n"+
			"over on expiry or NAK; with --release, give the leases back on SIGTERM.", stderr)
	var ifaces listFlag
	fs.Var(&ifaces, "iface", "a link to configure (repeatable)")
	root := fs.String("root", "/", "root directory for etc/resolv.conf and run/notos-agent")
	timeout := fs.Duration("timeout", 30*time.Second, "overall deadline of the configuration (not of --keep)")
	mode := fs.String("net", "auto", "auto (static where the metadata says, DHCP elsewhere), dhcp, static or off")
	resolv := fs.String("resolv-conf", "write", "write or skip")
	keep := fs.Bool("keep", false, "stay in the foreground and keep the DHCP leases")
	release := fs.Bool("release", false, "with --keep: send DHCPRELEASE on SIGTERM")
	hold := fs.Bool("hold-sockets", false, "internal: hold the inherited sockets until standard input closes, then exit")
	drive := driveFlags(fs)
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if *hold {
		// The parent closes the pipe by exiting; the sockets are released
		// when this process exits in turn (see holdSockets).
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	if slices.Contains(ifaces, "") {
		return usageError(fs, stderr, "--iface needs a link name")
	}
	m, err := netcfg.ParseMode(*mode)
	if err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	rc, err := netcfg.ParseResolvConfMode(*resolv)
	if err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	if *release && !*keep {
		return usageError(fs, stderr, "--release needs --keep")
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "notos-agent: net: "+format+"\n", args...) }

	sigctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(sigctx, *timeout)
	defer cancel()

	o := netcfg.UpOptions{Ifaces: ifaces, Root: *root, Mode: m, ResolvConf: rc, KeepDHCP: *keep, Logf: logf}
	var mu sync.Mutex
	var sockets []*os.File
	if !*keep {
		// Collected for holdSockets; a keeper closes its own.
		o.DHCP.Hand = func(f *os.File) {
			mu.Lock()
			sockets = append(sockets, f)
			mu.Unlock()
		}
	}
	o.Metadata = loadMetadata(ctx, fs, drive, m, logf)
	if o.Metadata != nil && netcfg.ValidDNSName(o.Metadata.Hostname) {
		o.DHCP.Hostname = o.Metadata.Hostname
	}
	// NETLINK_ROUTE only: without a family NewHandle also opens XFRM, whose
	// module (xfrm_user) is not loaded at boot.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fail(stderr, "net", fmt.Errorf("open netlink: %w", err))
	}
	defer h.Close()

	res, err := netcfg.Up(ctx, h, o)
	for _, w := range res.Warnings {
		logf("warning: %s", w)
	}
	for _, l := range res.Links {
		fmt.Fprintf(stdout, "net %s\n", l)
	}
	if res.ResolvConf != "" {
		fmt.Fprintf(stdout, "net resolv.conf: %s\n", res.ResolvConf)
	}
	if !*keep {
		mu.Lock()
		holdSockets(sockets, logf)
		mu.Unlock()
		if err != nil {
			return fail(stderr, "net", err)
		}
		return 0
	}
	if err != nil {
		logf("%v", err)
	}
	if len(res.DHCPLinks) == 0 {
		logf("no DHCP link to keep: waiting for SIGTERM")
		<-sigctx.Done()
		return 0
	}
	if err := netcfg.Keep(sigctx, res.DHCPLinks, o, *release); err != nil {
		return fail(stderr, "net", err)
	}
	return 0
}

// loadMetadata reads the config drive when --drive or --label was given,
// else looks for it once, without waiting, in the modes that use it. A
// drive that is not there is not an error: DHCP does without it.
func loadMetadata(ctx context.Context, fs *flag.FlagSet, o *configdrive.Options, m netcfg.Mode, logf func(string, ...any)) *configdrive.Metadata {
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "drive" || f.Name == "label" })
	if !explicit {
		if m != netcfg.ModeAuto && m != netcfg.ModeStatic {
			return nil
		}
		o.Wait = 0
	}
	md, err := configdrive.Load(ctx, *o)
	switch {
	case errors.Is(err, configdrive.ErrNoDrive) && !explicit:
		return nil
	case err != nil:
		logf("config drive: %v: going on without metadata", err)
		return nil
	}
	return md
}

// holdPipe is the write end of the pipe to the socket holder: it stays
// open until this process exits.
var holdPipe *os.File

// holdSockets hands the closed-by-us packet sockets to a child,
// `notos-agent net --hold-sockets`, that keeps them until this process has
// exited: the kernel's release of a packet socket waits for an RCU grace
// period (5 to 20 ms), which would otherwise delay our exit, and with it
// the boot. The child needs nothing else and exits on its own. When it
// cannot be started, the sockets are simply closed here.
func holdSockets(files []*os.File, logf func(string, ...any)) {
	if len(files) == 0 {
		return
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	r, w, err := os.Pipe()
	if err != nil {
		logf("hold sockets: %v", err)
		return
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe", "net", "--hold-sockets")
	cmd.Stdin = r
	cmd.ExtraFiles = files
	// Its own session: a terminal's signals are not its business.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf("hold sockets: %v", err)
		w.Close()
		return
	}
	holdPipe = w
}
