package kmod

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"syscall"
)

// depEntry is one line of modules.dep: a module's file and the files of
// the modules it needs, as depmod orders them (a module before the modules
// it needs, so they are loaded from the end).
type depEntry struct {
	path string
	deps []string
}

// aliasEntry is one "alias PATTERN MODULE" line; the pattern is already
// normalised.
type aliasEntry struct {
	pattern string
	module  string
}

// softdep holds the pre: and post: names of one "softdep MODULE ..." line.
type softdep struct {
	pre, post []string
}

// openRegular opens a file for reading, refusing anything but a regular
// file. O_NONBLOCK keeps a FIFO planted in a broken tree from blocking the
// open forever; it changes nothing for regular files.
func openRegular(file string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("open %s: not a regular file", file)
	}
	return f, fi, nil
}

// readIndex reads a whole index file of at most limit bytes.
func readIndex(file string, limit int64) ([]byte, error) {
	f, _, err := openRegular(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: %w: more than %d bytes", file, ErrTooLarge, limit)
	}
	return b, nil
}

// eachLine calls fn with every line that is neither blank nor a comment,
// numbered from 1, and stops at fn's first error.
func eachLine(data []byte, fn func(n int, line string) error) error {
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		if err := fn(n, s); err != nil {
			return err
		}
	}
	return nil
}

// malformed is the error for line n of file.
func malformed(file string, n int, why, line string) error {
	if len(line) > 80 {
		line = line[:80] + "..."
	}
	return fmt.Errorf("%s line %d: %w: %s: %q", file, n, ErrMalformed, why, line)
}

// parseDep parses modules.dep ("path: dep dep ..."), keyed by module name.
// file names the file in errors. The first line for a module wins, as in
// depmod's output, which never repeats one.
func parseDep(data []byte, file string) (map[string]depEntry, error) {
	deps := make(map[string]depEntry)
	err := eachLine(data, func(n int, line string) error {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return malformed(file, n, "no ':'", line)
		}
		mod = strings.TrimSpace(mod)
		name, err := moduleName(mod)
		if err != nil {
			return malformed(file, n, err.Error(), line)
		}
		e := depEntry{path: mod}
		for _, d := range strings.Fields(rest) {
			if _, err := moduleName(d); err != nil {
				return malformed(file, n, err.Error(), line)
			}
			e.deps = append(e.deps, d)
		}
		if _, dup := deps[name]; !dup {
			deps[name] = e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return deps, nil
}

// moduleName returns the module name of a modules.dep path
// ("kernel/net/core/failover.ko.xz" → "failover"), refusing paths that are
// not module files or that climb out of the tree.
func moduleName(p string) (string, error) {
	if p == "" || strings.ContainsAny(p, " \t\x00") {
		return "", fmt.Errorf("bad module path %q", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("module path %q leaves the tree", p)
		}
	}
	base := path.Base(p)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if name, ok := strings.CutSuffix(base, ext); ok && validName(name) {
			return normalize(name), nil
		}
	}
	return "", fmt.Errorf("%q is not a .ko, .ko.xz, .ko.zst or .ko.gz file", p)
}

// parseAlias parses modules.alias ("alias PATTERN MODULE").
func parseAlias(data []byte, file string) ([]aliasEntry, error) {
	var aliases []aliasEntry
	err := eachLine(data, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" || !validName(f[2]) {
			return malformed(file, n, "want \"alias PATTERN MODULE\"", line)
		}
		aliases = append(aliases, aliasEntry{pattern: normalizePattern(f[1]), module: normalize(f[2])})
		return nil
	})
	return aliases, err
}

// parseBuiltin parses modules.builtin: one path per built-in module.
func parseBuiltin(data []byte, file string) (map[string]bool, error) {
	builtin := make(map[string]bool)
	err := eachLine(data, func(n int, line string) error {
		name, err := moduleName(line)
		if err != nil {
			return malformed(file, n, err.Error(), line)
		}
		builtin[name] = true
		return nil
	})
	return builtin, err
}

// parseBuiltinModinfo takes the aliases of built-in modules from
// modules.builtin.modinfo: NUL-terminated "module.key=value" records, of
// which only "module.alias=PATTERN" matter here. It is how "net-pf-17"
// resolves to af_packet when af_packet is built in (Debian), since depmod
// writes only loadable modules' aliases to modules.alias.
func parseBuiltinModinfo(data []byte) []aliasEntry {
	var aliases []aliasEntry
	for _, rec := range bytes.Split(data, []byte{0}) {
		mod, val, ok := strings.Cut(string(rec), ".alias=")
		if !ok || !validName(mod) || val == "" || strings.Contains(mod, "=") {
			continue
		}
		aliases = append(aliases, aliasEntry{pattern: normalizePattern(val), module: normalize(mod)})
	}
	return aliases
}

// parseSoftdep parses modules.softdep ("softdep MODULE pre: A B post: C").
// As in kmod, names before the first "pre:" or "post:" are ignored (depmod
// writes such lines for modules that declare MODULE_SOFTDEP("name")).
func parseSoftdep(data []byte, file string) (map[string]softdep, error) {
	soft := make(map[string]softdep)
	err := eachLine(data, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" || !validName(f[1]) {
			return malformed(file, n, "want \"softdep MODULE pre: ... post: ...\"", line)
		}
		mod := normalize(f[1])
		sd := soft[mod]
		var list *[]string
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				list = &sd.pre
			case "post:":
				list = &sd.post
			default:
				if list != nil {
					*list = append(*list, w)
				}
			}
		}
		soft[mod] = sd
		return nil
	})
	return soft, err
}

// parseProcModules returns the names in /proc/modules
// ("name size refcount deps state address").
func parseProcModules(data []byte) map[string]bool {
	loaded := make(map[string]bool)
	_ = eachLine(data, func(_ int, line string) error {
		f := strings.Fields(line)
		// A module on its way out is not there for the caller.
		if len(f) >= 5 && f[4] == "Unloading" {
			return nil
		}
		loaded[normalize(f[0])] = true
		return nil
	})
	return loaded
}
