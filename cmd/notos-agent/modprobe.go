package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/notos-agent/notos-agent/kmod"
)

func cmdModprobe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("modprobe", "[--modules-dir DIR] [--dry-run] NAME [key=value...]...",
		"Load kernel modules and the modules they need, like modprobe, for the running\n"+
			"kernel. key=value arguments are parameters of the NAME before them. Exit 0\n"+
			"when every NAME is in the kernel afterwards, 1 otherwise.", stderr)
	dir := fs.String("modules-dir", "", "module tree to use (default: $MODULE_DIR, /lib/modules/RELEASE, /usr/lib/modules/RELEASE, NixOS's)")
	dryRun := fs.Bool("dry-run", false, "resolve and report, load nothing")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	specs, err := moduleSpecs(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "notos-agent modprobe: %v\n", err)
		fs.Usage()
		return 2
	}
	// Each line is printed as soon as it is known: if a module's init
	// hangs, the console still shows how far loading got.
	l := &kmod.Loader{Dir: *dir, DryRun: *dryRun, Report: func(r kmod.Result) { fmt.Fprintln(stdout, r) }}
	tree, err := l.ModulesDir()
	if err != nil {
		return fail(stderr, "modprobe", err)
	}
	fmt.Fprintf(stdout, "modules: %s\n", tree)
	code := 0
	for _, r := range l.Load(context.Background(), specs...) {
		if !r.Dep && !r.Present() {
			code = fail(stderr, "modprobe "+r.Name, r.Err)
		}
	}
	return code
}

// moduleSpecs groups arguments into "NAME key=value ..." specs: an
// argument holding '=' is a parameter of the name before it.
func moduleSpecs(args []string) ([]string, error) {
	var specs []string
	for _, a := range args {
		switch {
		case a == "":
			return nil, fmt.Errorf("empty argument")
		case strings.Contains(a, "="):
			if len(specs) == 0 {
				return nil, fmt.Errorf("parameter %q before any module name", a)
			}
			specs[len(specs)-1] += " " + a
		default:
			specs = append(specs, a)
		}
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("no module named")
	}
	return specs, nil
}
