// Package agent runs notos-agent's provisioning steps in order, each
// independent of the others, under one deadline: what runit's stage 1
// calls at boot and an operator can rerun on a booted system.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/internal/atomicfile"
)

// Built-in defaults, overridden by the kernel command line, itself
// overridden by flags.
const (
	DefaultTimeout   = 60 * time.Second
	DefaultDriveWait = 5 * time.Second
	DefaultLabel     = "config-2"
	DefaultNet       = "auto"
	DefaultUser      = "root"
)

// SeedMarker records, until the next boot, that random_seed was credited.
const SeedMarker = "/run/notos-agent/random-seed.credited"

// DefaultModules are always loaded: af_packet for the DHCP client's packet
// socket, isofs for the kernel's fallback reading of the drive.
var DefaultModules = []string{"af_packet", "isofs"}

// Options are run's flags. For the settings the kernel command line can
// also give, the zero value (nil for lists) means "not given".
type Options struct {
	Root    string        // "" or "/" on a real system; a directory for tests and images
	Timeout time.Duration // overall deadline
	// DriveWait is how long to wait for the drive to appear.
	DriveWait    time.Duration
	Drive        string // a device or image file; skips the scan
	Label        string
	Modules      []string // added to DefaultModules
	ModulesDir   string   // the module tree; "" searches as kmod does
	Ifaces       []string
	Net          string // auto, dhcp, static, off
	Skip         []string
	UserDataWait time.Duration
	User         string
	Quiet        bool
	Verbose      bool

	Version string    // recorded in state.json
	Stderr  io.Writer // where the step lines go; nil: os.Stderr
}

// config is what run acts on: Options merged over the kernel command line
// over the defaults.
type config struct {
	Timeout time.Duration
	Label   string
	Modules []string
	Ifaces  []string
	Net     string
	Skip    []string
	Verbose bool
}

// resolve merges flags over the kernel command line over the defaults.
func resolve(o Options, c Cmdline) config {
	cfg := config{
		Timeout: firstNonZero(o.Timeout, c.Timeout, DefaultTimeout),
		Label:   firstNonZero(o.Label, c.Label, DefaultLabel),
		Net:     firstNonZero(o.Net, c.Net, DefaultNet),
		Ifaces:  firstNonNil(o.Ifaces, c.Ifaces),
		Skip:    firstNonNil(o.Skip, c.Skip),
		Verbose: o.Verbose || c.Debug && !o.Quiet,
	}
	cfg.Modules = slices.Clone(DefaultModules)
	for _, m := range firstNonNil(o.Modules, c.Modules) {
		if !slices.Contains(cfg.Modules, m) {
			cfg.Modules = append(cfg.Modules, m)
		}
	}
	return cfg
}

func firstNonZero[T comparable](vals ...T) T {
	var zero T
	for _, v := range vals {
		if v != zero {
			return v
		}
	}
	return zero
}

func firstNonNil[T any](lists ...[]T) []T {
	for _, l := range lists {
		if l != nil {
			return l
		}
	}
	return nil
}

// run is one execution of Run: the options, the merged configuration and
// what the steps hand to each other. The mutex guards what an abandoned
// step's goroutine could still write while state.json is being made.
type run struct {
	o      Options
	root   string
	system bool // root is "/": the kernel itself may be changed
	log    *Logger
	runner *Runner

	mu  sync.Mutex
	cfg config
	md  *configdrive.Metadata
	// links are the links found up while the drive was read.
	links []string
}

func (r *run) config() config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

func (r *run) metadata() *configdrive.Metadata {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.md
}

// path returns a system path under the root.
func (r *run) path(p string) string { return filepath.Join(r.root, p) }

// Run runs every step and writes state.json. It returns the state and the
// exit status: 0 when every step that applied succeeded, 1 otherwise. It
// never panics (a step's panic is that step's failure) and never returns
// later than the deadline plus the time to write state.json.
func Run(ctx context.Context, o Options) (*State, int) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.User == "" {
		o.User = DefaultUser
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	r := &run{o: o, root: o.Root, system: filepath.Clean(o.Root) == "/"}
	r.cfg = resolve(o, Cmdline{})
	r.log = &Logger{Stderr: o.Stderr, KmsgPath: r.path("/dev/kmsg"), Quiet: o.Quiet, Verbose: r.cfg.Verbose}

	start := time.Now()
	r.runner = NewRunner(r.cfg.Timeout)
	r.runner.OnResult = r.log.Step
	r.runner.SetSkips(skips(r.cfg.Skip, o.Skip != nil))

	results := r.runner.Run(ctx, r.stages()...)

	st := &State{
		Version:  o.Version,
		Started:  start.UTC(),
		Finished: time.Now().UTC(),
		Deadline: r.runner.Deadline().UTC(),
		ExitCode: ExitCode(results),
		User:     o.User,
		Steps:    results,
	}
	// An abandoned drive step may still hand its metadata in; only a
	// finished one counts.
	if md := r.metadata(); md != nil && outcomeOf(results, "drive") == OK {
		st.InstanceID, st.Source = md.InstanceID, md.Source
	}
	if err := writeState(r.root, st); err != nil {
		r.log.Printf("state: failed: %v", err)
		st.ExitCode = 1
	}
	r.log.Printf("done: %s (%s)", summarize(results), roundDuration(st.Finished.Sub(st.Started)))
	return st, st.ExitCode
}

// outcomeOf returns the named step's outcome, "" when it did not run.
func outcomeOf(results []StepResult, name string) Outcome {
	for _, res := range results {
		if res.Name == name {
			return res.Outcome
		}
	}
	return ""
}

// skips turns --skip (fromFlag) or notos.skip= names into the runner's
// map of reasons.
func skips(names []string, fromFlag bool) map[string]string {
	reason := "by notos.skip="
	if fromFlag {
		reason = "by --skip"
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = reason
	}
	return m
}

// summarize is the last log line: how many steps ended how, and what
// changed.
func summarize(results []StepResult) string {
	counts := map[Outcome]int{}
	var changed []string
	for _, res := range results {
		counts[res.Outcome]++
		if len(res.Changes) > 0 {
			changed = append(changed, res.Name)
		}
	}
	var parts []string
	for _, o := range []Outcome{OK, Failed, Skipped, Abandoned} {
		if counts[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
		}
	}
	s := strings.Join(parts, ", ")
	if len(changed) == 0 {
		return s + "; nothing changed"
	}
	return s + "; changed: " + strings.Join(changed, ", ")
}

// stages lists run's steps in the order issue 5 gives them. The drive is
// read while the links come up.
func (r *run) stages() []Stage {
	return []Stage{
		{{Name: "mounts", Run: r.mounts}},
		{{Name: "cmdline", Run: r.cmdline}},
		{{Name: "modules", Run: r.modules}},
		{{Name: "drive", Run: r.drive}, {Name: "links", Run: r.waitLinks}},
		{{Name: "seed", Run: r.seed}},
		{{Name: "keys", Run: r.keys}},
		{{Name: "hostname", Run: r.hostname}},
		{{Name: "net", Run: r.network}},
		{{Name: "userdata", Run: r.userData}},
	}
}

// notSystem is the reason a step that changes the kernel skips under
// another --root.
const notSystem = "--root is not /: the running kernel is left alone"

func (r *run) mounts(ctx context.Context, rec *Record) error {
	if !r.system {
		rec.Skip(notSystem)
		return nil
	}
	done, err := ensureMounts(SystemMounter{}, "/", "/proc/self/mountinfo")
	for _, p := range done {
		rec.Changed("mounted %s", p)
	}
	if len(done) > 0 {
		rec.Summary("mounted %s", strings.Join(done, ", "))
	} else if err == nil {
		rec.Summary("/proc, /sys, /dev and /run already mounted")
	}
	return err
}

// cmdline reads /proc/cmdline and merges it under the flags. A missing
// file (a test root) is not an error.
func (r *run) cmdline(ctx context.Context, rec *Record) error {
	path := r.path("/proc/cmdline")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !r.system {
		rec.Skip("no %s", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	c := ParseCmdline(string(b))
	for _, w := range c.Warnings {
		rec.Warn("%s", w)
	}
	cfg := resolve(r.o, c)
	r.mu.Lock()
	old := r.cfg
	r.cfg = cfg
	r.mu.Unlock()
	if cfg.Timeout != old.Timeout {
		r.runner.SetDeadline(r.runner.Deadline().Add(cfg.Timeout - old.Timeout))
	}
	r.runner.SetSkips(skips(cfg.Skip, r.o.Skip != nil))
	r.log.SetVerbose(cfg.Verbose)

	var given []string
	for _, w := range cmdlineWords(string(b)) {
		if w == "--" {
			break
		}
		if strings.HasPrefix(w, "notos.") {
			given = append(given, w)
		}
	}
	if len(given) == 0 {
		rec.Summary("no notos.* parameters")
	} else {
		rec.Summary("%s", strings.Join(given, " "))
	}
	rec.Fact("timeout", cfg.Timeout.String())
	rec.Fact("net", cfg.Net)
	rec.Fact("label", cfg.Label)
	return nil
}

func (r *run) seed(ctx context.Context, rec *Record) error {
	md := r.metadata()
	switch {
	case md == nil:
		rec.Skip("no metadata")
		return nil
	case len(md.RandomSeed) == 0:
		rec.Skip("no random_seed on the drive")
		return nil
	case !r.system:
		rec.Skip(notSystem)
		return nil
	}
	return seedOnce(rec, r.root, md, URandom{Path: "/dev/urandom"})
}

// seedOnce credits md's random_seed through a, once per boot: crediting
// the same bytes twice would overstate the pool, so a marker under /run (a
// tmpfs, empty at boot) says it was done, however often run is called.
func seedOnce(rec *Record, root string, md *configdrive.Metadata, a EntropyAdder) error {
	marker := filepath.Join(root, SeedMarker)
	if _, err := os.Stat(marker); err == nil {
		rec.Skip("random_seed already credited since boot (%s)", SeedMarker)
		return nil
	}
	avail := filepath.Join(root, "/proc/sys/kernel/random/entropy_avail")
	before := entropyAvail(avail)
	n, err := seedKernel(a, md.RandomSeed)
	if err != nil {
		return err
	}
	after := entropyAvail(avail)
	if _, err := atomicfile.Write(marker, []byte(md.InstanceID+"\n"), atomicfile.Options{Perm: 0o644, UID: -1, GID: -1, DirPerm: 0o755}); err != nil {
		rec.Warn("%v", err)
	}
	rec.Fact("seed_bytes", fmt.Sprint(n))
	rec.Fact("entropy_avail_before", fmt.Sprint(before))
	rec.Fact("entropy_avail_after", fmt.Sprint(after))
	rec.Changed("credited %d bits of entropy", 8*n)
	rec.Summary("%d bytes of random_seed credited (entropy_avail %d -> %d)", n, before, after)
	return nil
}

func (r *run) userData(ctx context.Context, rec *Record) error {
	md := r.metadata()
	if md == nil {
		rec.Skip("no metadata")
		return nil
	}
	return userData{
		Root:       r.root,
		Data:       md.UserData,
		InstanceID: md.InstanceID,
		RunScripts: r.system,
		Wait:       r.o.UserDataWait,
	}.apply(ctx, rec)
}

// IsStageOne reports whether the program was started as runit's stage 1
// (/etc/runit/1): it then runs as `run` and hands over to 1.local.
func IsStageOne(argv0 string) bool { return strings.HasSuffix(argv0, "/1") }

// StageOneLocal is the script run after stage 1's provisioning, so that an
// image can use the agent itself as /etc/runit/1 and keep its own steps.
const StageOneLocal = "/etc/runit/1.local"

// LocalStageOne returns StageOneLocal under root when it is an executable
// regular file (symbolic links followed), and whether there is one to exec.
func LocalStageOne(root string) (string, bool) {
	p := filepath.Join(root, StageOneLocal)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return p, false
	}
	return p, true
}
