// Package kmod loads Linux kernel modules the way modprobe does, with no
// modprobe on the system: it finds the module tree of the running kernel,
// resolves names through modules.alias, loads modules.dep dependencies and
// modules.softdep pre-modules first, recognises built-in and already loaded
// modules, and loads plain or compressed (.ko.xz, .ko.zst, .ko.gz) files.
// From modprobe.d it takes options, softdeps and blacklists, and from the
// kernel command line module options and modprobe.blacklist.
//
// Failures are per module: a missing or refused module is reported in its
// Result and the others are still loaded.
package kmod

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Limits that keep a hostile or broken tree from exhausting memory.
const (
	// MaxIndexSize bounds an index file (modules.dep, modules.alias, ...).
	// Debian's largest, modules.alias of a full kernel, is about 1 MiB.
	MaxIndexSize = 16 << 20
	// MaxImageSize bounds a module file and its decompressed image. The
	// largest modules in distribution kernels (amdgpu) are about 20 MiB.
	MaxImageSize = 64 << 20
)

var (
	// ErrNotFound: the name is neither a module of the tree, an alias,
	// nor built in or loaded.
	ErrNotFound = errors.New("module not found")
	// ErrCycle: modules.dep makes a module depend on itself.
	ErrCycle = errors.New("dependency cycle")
	// ErrTooLarge: a file or decompressed image exceeds its limit.
	ErrTooLarge = errors.New("too large")
	// ErrMalformed: an index file has a line that cannot be parsed.
	ErrMalformed = errors.New("malformed line")
)

// Outcome is what became of one module.
type Outcome int

const (
	// Loaded: the kernel accepted the module.
	Loaded Outcome = iota + 1
	// BuiltIn: the module is part of the kernel image.
	BuiltIn
	// AlreadyLoaded: the module was loaded before (or by a concurrent
	// loader while this one ran).
	AlreadyLoaded
	// WouldLoad: a dry run found the module's file and would load it.
	WouldLoad
	// Failed: the module is not there; Result.Err says why.
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Loaded:
		return "loaded"
	case BuiltIn:
		return "built-in"
	case AlreadyLoaded:
		return "already loaded"
	case WouldLoad:
		return "would load"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result reports one module: either one that was asked for or one that a
// module asked for needs (Dep).
type Result struct {
	// Name is the name that was asked for, as given (it may be an alias
	// such as fs-iso9660). For a dependency it is the module that needs it.
	Name string
	// Module is the module's name with '-' written '_', as the kernel
	// names it in /sys/module; for a name that resolved to nothing it is
	// the normalised name.
	Module string
	// Dep is true for a module loaded because Name needs it (modules.dep
	// or a softdep pre:/post: entry).
	Dep bool
	// Path is the module's file, relative to the module tree; empty for
	// built-in modules and names that resolved to nothing.
	Path string
	// Params are the parameters passed to the kernel ("key=value ...").
	Params string
	// Via says how the module was loaded: "finit_module",
	// "finit_module, decompressed by the kernel" or "init_module, xz
	// decompressed here".
	Via      string
	Outcome  Outcome
	Err      error
	Duration time.Duration
}

// Present reports whether the module is in the kernel after the load (or
// would be, for a dry run).
func (r Result) Present() bool { return r.Outcome != Failed && r.Outcome != 0 }

// String is the one-line outcome: "virtio_net: loaded (1.2ms, finit_module)".
func (r Result) String() string {
	var b strings.Builder
	b.WriteString(r.Module)
	if r.Name != "" && !r.Dep && normalize(r.Name) != r.Module {
		fmt.Fprintf(&b, " (%s)", r.Name)
	}
	b.WriteString(": ")
	if r.Outcome == Failed && r.Err != nil {
		fmt.Fprintf(&b, "failed: %v", r.Err)
	} else {
		b.WriteString(r.Outcome.String())
	}
	fmt.Fprintf(&b, " (%s", r.Duration.Round(time.Microsecond))
	if r.Via != "" {
		fmt.Fprintf(&b, ", %s", r.Via)
	}
	b.WriteString(")")
	if r.Dep {
		fmt.Fprintf(&b, ", needed by %s", r.Name)
	}
	return b.String()
}

// normalize writes a module name the kernel's way: '-' and '_' are the
// same in module names (kernel/params.c parameq, kmod's modname_normalize).
func normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// validName reports whether name can be a module name: it becomes a
// directory name under /sys/module, so it may not be empty, hold '/' or
// be "." or "..".
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00 \t\n")
}
