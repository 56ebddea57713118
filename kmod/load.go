package kmod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Loader loads modules from one module tree. The zero value loads from the
// running kernel's tree into the running kernel. A Loader reads the tree's
// index files once; it is not safe for concurrent use.
type Loader struct {
	// Root is prefixed to every path read (module tree, /sys, /proc);
	// empty means "/". Tests point it at a fake system.
	Root string
	// Dir is the module tree to use, relative to Root (--modules-dir).
	// Empty means search: $MODULE_DIR, /lib/modules/<release>,
	// /usr/lib/modules/<release>, NixOS's booted system.
	Dir string
	// Release is the kernel release; empty means uname -r.
	Release string
	// Kernel makes the load syscalls; nil means the running kernel.
	Kernel Kernel
	// DryRun resolves and reports but loads nothing (WouldLoad).
	DryRun bool
	// Report, when set, gets each Result as soon as it is known, so that a
	// console shows progress even if a module's init never returns.
	Report func(Result)

	tree string // the module tree found, relative to Root
	idx  *index
}

// index holds the tree's parsed index files.
type index struct {
	dep          map[string]depEntry
	alias        []aliasEntry
	builtin      map[string]bool
	builtinAlias []aliasEntry
	softdep      map[string]softdep
	config       *config // modprobe.d
}

// ModulesDir returns the module tree that Load uses, as seen on the
// system (without Root), finding it on first use.
func (l *Loader) ModulesDir() (string, error) {
	if l.tree != "" {
		return l.tree, nil
	}
	var dir string
	var err error
	if l.Dir != "" {
		dir, err = explicitTree(l.Root, l.Dir)
	} else {
		rel := l.Release
		if rel == "" {
			if rel, err = kernelRelease(); err != nil {
				return "", err
			}
		}
		dir, err = findTree(l.Root, rel, os.Getenv("MODULE_DIR"))
	}
	if err != nil {
		return "", err
	}
	l.tree = dir
	return dir, nil
}

// path returns a system path under Root.
func (l *Loader) path(p string) string { return filepath.Join(l.Root, p) }

// index reads the tree's index files and modprobe.d once. modules.dep is required; the
// others are optional, as depmod may not write them (no aliases, no
// softdeps) and a kernel without loadable built-ins has no modules.builtin.
func (l *Loader) index() (*index, error) {
	if l.idx != nil {
		return l.idx, nil
	}
	dir, err := l.ModulesDir()
	if err != nil {
		return nil, err
	}
	file := func(name string) string { return l.path(path.Join(dir, name)) }
	optional := func(name string) ([]byte, error) {
		b, err := readIndex(file(name), MaxIndexSize)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	var idx index
	b, err := readIndex(file("modules.dep"), MaxIndexSize)
	if err != nil {
		return nil, err
	}
	if idx.dep, err = parseDep(b, file("modules.dep")); err != nil {
		return nil, err
	}
	if b, err = optional("modules.alias"); err == nil {
		idx.alias, err = parseAlias(b, file("modules.alias"))
	}
	if err != nil {
		return nil, err
	}
	if b, err = optional("modules.builtin"); err == nil {
		idx.builtin, err = parseBuiltin(b, file("modules.builtin"))
	}
	if err != nil {
		return nil, err
	}
	if b, err = optional("modules.builtin.modinfo"); err != nil {
		return nil, err
	}
	idx.builtinAlias = parseBuiltinModinfo(b)
	if b, err = optional("modules.softdep"); err == nil {
		idx.softdep, err = parseSoftdep(b, file("modules.softdep"))
	}
	if err != nil {
		return nil, err
	}
	if idx.config, err = readConfig(l.Root); err != nil {
		return nil, err
	}
	l.idx = &idx
	return l.idx, nil
}

// resolve turns a name into module names the way modprobe does: a module
// of modules.dep, a built-in module, then every module whose alias
// pattern matches (in file order) and that modprobe.d does not blacklist,
// then the aliases of built-in modules.
func (idx *index) resolve(name string) []string {
	n := normalize(name)
	if _, ok := idx.dep[n]; ok || idx.builtin[n] {
		return []string{n}
	}
	var mods []string
	for _, table := range [][]aliasEntry{idx.alias, idx.builtinAlias} {
		for _, a := range table {
			if fnmatch(a.pattern, n) && !idx.config.blacklist[a.module] && !slices.Contains(mods, a.module) {
				mods = append(mods, a.module)
			}
		}
		if len(mods) > 0 {
			return mods
		}
	}
	return nil
}

// maxDepth bounds how deep dependencies nest.
const maxDepth = 64

// run is the state of one Load call.
type run struct {
	*Loader
	ctx     context.Context
	idx     *index
	kernel  Kernel
	results []Result
	done    map[string]*Result // module → its final result
	stack   []string           // modules being loaded, outermost first
	proc    map[string]bool    // /proc/modules, read on first need
}

// Load loads each spec ("NAME" or "NAME key=value ...") with the modules
// it needs, and returns one Result per module in the order they were
// handled: dependencies before the modules that need them. Every named
// module has a Result with Dep false; a name that matches several modules
// (an alias) has one per module.
func (l *Loader) Load(ctx context.Context, specs ...string) []Result {
	r := &run{Loader: l, ctx: ctx, kernel: l.Kernel, done: make(map[string]*Result)}
	if r.kernel == nil {
		r.kernel = SystemKernel{}
	}
	idx, idxErr := l.index()
	r.idx = idx
	if idx == nil {
		r.idx = &index{config: &config{}}
	}
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		name, params := spec, ""
		if i := strings.IndexAny(spec, " \t\n"); i >= 0 {
			name, params = spec[:i], strings.TrimSpace(spec[i:])
		}
		err := idxErr
		if err == nil && !validName(name) {
			err = fmt.Errorf("bad module name %q", name)
		}
		if err != nil {
			res := Result{Name: name, Module: normalize(name), Params: params, Outcome: Failed, Err: err}
			// Without a module tree (a monolithic kernel, or a tree
			// that is unreadable), a module that is built in or already
			// loaded is still present: only loading needs the tree.
			if idxErr != nil && validName(name) {
				if o, ok := r.present(res.Module); ok {
					res.Outcome, res.Err = o, nil
				}
			}
			r.add(res)
			continue
		}
		r.named(name, params)
	}
	return r.results
}

// add records a Result and reports it.
func (r *run) add(res Result) {
	r.results = append(r.results, res)
	if r.Report != nil {
		r.Report(res)
	}
}

// named handles one name that was asked for.
func (r *run) named(name, params string) {
	mods := r.idx.resolve(name)
	if len(mods) == 0 {
		// Not in the tree, but it may be loaded from elsewhere.
		mods = []string{normalize(name)}
	}
	for _, m := range mods {
		if prev, ok := r.done[m]; ok {
			// Handled earlier in this call, perhaps as a dependency:
			// report it again for the name, as it now stands.
			res := *prev
			res.Name, res.Dep, res.Duration, res.Via = name, false, 0, ""
			if res.Outcome == Loaded {
				res.Outcome = AlreadyLoaded
			}
			r.add(res)
			continue
		}
		r.module(m, name, params, false)
	}
}

// module loads m and what it needs, records its Result and returns it.
// name is the name asked for (for a dependency, the module needing it).
func (r *run) module(m, name, params string, dep bool) *Result {
	if prev, ok := r.done[m]; ok {
		return prev
	}
	// modprobe.d options come first, so that those given here win.
	params = strings.TrimSpace(r.idx.config.options[m] + " " + params)
	res := &Result{Name: name, Module: m, Dep: dep, Params: params}
	finish := func(start time.Time) *Result {
		res.Duration = time.Since(start)
		r.done[m] = res
		r.add(*res)
		return res
	}
	start := time.Now()
	if err := r.ctx.Err(); err != nil {
		res.Outcome, res.Err = Failed, fmt.Errorf("load: %w", err)
		return finish(start)
	}
	if o, ok := r.present(m); ok {
		res.Outcome = o
		return finish(start)
	}
	e, ok := r.idx.dep[m]
	if !ok {
		dir, _ := r.ModulesDir()
		res.Outcome, res.Err = Failed, fmt.Errorf("%w in %s", ErrNotFound, dir)
		return finish(start)
	}
	res.Path = e.path

	// Real trees nest a few levels (virtio_net → net_failover → failover);
	// a hostile one could nest thousands, and each level's error wraps the
	// one below it.
	if len(r.stack) >= maxDepth {
		res.Outcome, res.Err = Failed, fmt.Errorf("%w: dependencies nest deeper than %d", ErrTooLarge, maxDepth)
		return finish(start)
	}
	r.stack = append(r.stack, m)
	defer func() { r.stack = r.stack[:len(r.stack)-1] }()
	sd, ok := r.idx.config.softdep[m]
	if !ok {
		sd = r.idx.softdep[m]
	}
	// Softdeps are wishes: one that fails or is missing is reported in its
	// own Result and does not stop m (kmod warns and goes on too).
	r.soft(sd.pre, m)
	// depmod lists a module's needs with the deepest last: load from the end.
	for _, d := range slices.Backward(e.deps) {
		dm, _ := moduleName(d)
		// A module on the stack that is done already is one whose post:
		// softdeps are loading; needing it is no cycle.
		if _, done := r.done[dm]; !done && slices.Contains(r.stack, dm) {
			cycle := append(slices.Clone(r.stack[slices.Index(r.stack, dm):]), dm)
			res.Outcome, res.Err = Failed, fmt.Errorf("%w: %s", ErrCycle, strings.Join(cycle, " -> "))
			return finish(time.Now())
		}
		dr := r.module(dm, m, "", true)
		if dr.Outcome == Failed {
			res.Outcome, res.Err = Failed, fmt.Errorf("needs %s: %w", dm, dr.Err)
			return finish(time.Now())
		}
	}
	start = time.Now()
	switch {
	case r.DryRun:
		res.Outcome = WouldLoad
		if _, err := os.Stat(r.path(r.modulePath(e.path))); err != nil {
			res.Outcome, res.Err = Failed, err
		}
	default:
		res.Outcome, res.Via, res.Err = r.insert(m, r.modulePath(e.path), params)
	}
	finish(start)
	r.soft(sd.post, m)
	return res
}

// modulePath is the system path of a modules.dep path: relative to the
// tree, or absolute as older depmod versions wrote them.
func (r *run) modulePath(p string) string {
	if path.IsAbs(p) {
		return p
	}
	return path.Join(r.tree, p)
}

// soft loads the softdep names of m that are not being loaded already.
func (r *run) soft(names []string, m string) {
	for _, s := range names {
		for _, sm := range r.idx.resolve(s) {
			if !slices.Contains(r.stack, sm) {
				r.module(sm, m, "", true)
			}
		}
	}
}

// present reports whether m is in the kernel already, and how.
func (r *run) present(m string) (Outcome, bool) {
	if r.idx.builtin[m] {
		return BuiltIn, true
	}
	// /sys/module/<m> exists for every loaded module and for built-in
	// modules with parameters or a version; only loadable modules have
	// initstate ("live", "coming", "going").
	sys := r.path("/sys/module/" + m)
	if _, err := os.Stat(sys + "/initstate"); err == nil {
		return AlreadyLoaded, true
	}
	if fi, err := os.Stat(sys); err == nil && fi.IsDir() {
		return BuiltIn, true
	}
	if r.proc == nil {
		// Without /proc (not mounted yet) /sys/module above is the answer.
		b, _ := readIndex(r.path("/proc/modules"), MaxIndexSize)
		r.proc = parseProcModules(b)
	}
	if r.proc[m] {
		return AlreadyLoaded, true
	}
	return 0, false
}
