package kmod

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// modprobeDirs are the modprobe.d directories kmod reads, highest
// precedence first: a file name in an earlier directory hides the same
// name in later ones (modprobe.d(5)).
var modprobeDirs = []string{"/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/lib/modprobe.d", "/usr/lib/modprobe.d"}

// config is what notos-agent takes from modprobe.d and the kernel command
// line: options, softdeps and blacklists. "install" and "remove" commands are not run (they are shell
// commands), nor are "alias" lines read.
type config struct {
	options   map[string]string
	softdep   map[string]softdep
	blacklist map[string]bool
}

// readConfig reads every *.conf file of modprobeDirs under root, in file
// name order as kmod does.
func readConfig(root string) (*config, error) {
	files := map[string]string{} // name → path of the one that counts
	for _, dir := range modprobeDirs {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
		for _, e := range entries {
			if _, seen := files[e.Name()]; !seen && strings.HasSuffix(e.Name(), ".conf") && !e.IsDir() {
				files[e.Name()] = filepath.Join(root, dir, e.Name())
			}
		}
	}
	cfg := &config{options: map[string]string{}, softdep: map[string]softdep{}, blacklist: map[string]bool{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b, err := readIndex(files[name], MaxIndexSize)
		if err != nil {
			return nil, err
		}
		if err := cfg.parse(b, files[name]); err != nil {
			return nil, err
		}
	}
	// Without /proc (not mounted yet) there is no command line to read.
	if b, err := readIndex(filepath.Join(root, "/proc/cmdline"), 64<<10); err == nil {
		cfg.parseCmdline(string(b))
	}
	return cfg, nil
}

// parseCmdline takes, as kmod does, module options from the kernel command
// line ("virtio_net.napi_tx=0", "isofs.check=r", a bare "mod.flag") and
// "modprobe.blacklist=a,b". They come after modprobe.d's options, so they
// win. Values may be double-quoted, spaces and all (kernel/params.c
// next_arg).
func (cfg *config) parseCmdline(line string) {
	for _, arg := range cmdlineArgs(line) {
		key, _, _ := strings.Cut(arg, "=")
		mod, param, ok := strings.Cut(key, ".")
		if !ok || param == "" || !validName(mod) {
			continue
		}
		if key == "modprobe.blacklist" {
			_, list, _ := strings.Cut(arg, "=")
			for _, m := range strings.Split(list, ",") {
				if m != "" {
					cfg.blacklist[normalize(m)] = true
				}
			}
			continue
		}
		m := normalize(mod)
		cfg.options[m] = strings.TrimSpace(cfg.options[m] + " " + arg[len(mod)+1:])
	}
}

// cmdlineArgs splits the kernel command line at spaces outside double
// quotes, keeping the quotes.
func cmdlineArgs(line string) []string {
	var args []string
	var cur strings.Builder
	quoted := false
	for _, c := range line {
		switch {
		case c == '"':
			quoted = !quoted
			cur.WriteRune(c)
		case !quoted && (c == ' ' || c == '\t' || c == '\n'):
			if cur.Len() > 0 {
				args = append(args, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(c)
		}
	}
	if cur.Len() > 0 {
		args = append(args, cur.String())
	}
	return args
}

// parse adds one modprobe.d file to cfg. A line ending in '\' continues
// on the next; errors name the line where the command starts.
func (cfg *config) parse(data []byte, file string) error {
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		n, line := i+1, lines[i]
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + lines[i]
		}
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		line = strings.Join(f, " ")
		switch f[0] {
		case "options":
			if len(f) < 2 {
				return malformed(file, n, "want \"options MODULE PARAMS\"", line)
			}
			m := normalize(f[1])
			cfg.options[m] = strings.TrimSpace(cfg.options[m] + " " + strings.Join(f[2:], " "))
		case "softdep":
			sd, err := parseSoftdep([]byte(line), file)
			if err != nil || len(sd) != 1 {
				return malformed(file, n, "want \"softdep MODULE pre: ... post: ...\"", line)
			}
			for m, s := range sd {
				cfg.softdep[m] = s
			}
		case "blacklist":
			if len(f) != 2 {
				return malformed(file, n, "want \"blacklist MODULE\"", line)
			}
			cfg.blacklist[normalize(f[1])] = true
		}
	}
	return nil
}
