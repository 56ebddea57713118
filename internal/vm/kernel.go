package vm

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Kernel is an unpacked Debian cloud kernel package: the bzImage QEMU boots
// and the module tree that belongs to it. The package ships no modules.dep
// (dpkg's postinst runs depmod), so dependencies are read from each module's
// .modinfo section instead.
type Kernel struct {
	Vmlinuz    string // boot/vmlinuz-<release>
	ModulesDir string // lib/modules/<release>
	Release    string
	ConfigPath string // boot/config-<release>

	indexOnce sync.Once
	index     map[string]string // module name (with '_') -> path relative to ModulesDir
	indexErr  error
}

var fetchKernel = sync.OnceValues(func() (*Kernel, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "scripts", "fetch-kernel.sh")
	out, err := exec.Command(script).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return nil, fmt.Errorf("run %s: %w\n%s", script, err, stderr)
	}
	dir := strings.TrimSpace(string(out))
	vmlinuz, err := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if err != nil || len(vmlinuz) != 1 {
		return nil, fmt.Errorf("find boot/vmlinuz-* in %s: found %d", dir, len(vmlinuz))
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	k := &Kernel{
		Vmlinuz:    vmlinuz[0],
		ModulesDir: filepath.Join(dir, "lib", "modules", release),
		Release:    release,
		ConfigPath: filepath.Join(dir, "boot", "config-"+release),
	}
	if _, err := os.Stat(k.ModulesDir); err != nil {
		return nil, fmt.Errorf("stat module tree: %w", err)
	}
	return k, nil
})

// moduleRoot finds the directory holding go.mod upwards from the working
// directory, which go test sets to the package's source directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getwd: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find go.mod above the working directory: none")
		}
		dir = parent
	}
}

// FetchKernel returns the Debian cloud kernel fetched (and cached) by
// scripts/fetch-kernel.sh. The script runs once per test binary. When it
// fails the test is skipped, or fails under CI.
func FetchKernel(t TB) *Kernel {
	t.Helper()
	if _, err := exec.LookPath("apt-get"); err != nil {
		unavailable(t, "needs apt-get to fetch the Debian cloud kernel")
	}
	k, err := fetchKernel()
	if err != nil {
		unavailable(t, "Debian cloud kernel: %v", err)
	}
	return k
}

// ConfigOption returns the value of a kernel build option such as
// "CONFIG_MODULE_DECOMPRESS" ("y", "m", a string, or "" when unset).
func (k *Kernel) ConfigOption(name string) (string, error) {
	data, err := os.ReadFile(k.ConfigPath)
	if err != nil {
		return "", fmt.Errorf("read kernel config: %w", err)
	}
	prefix := name + "="
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", nil
}

// Builtin reports whether modules.builtin lists the module (compiled into
// the kernel, so no .ko file exists for it).
func (k *Kernel) Builtin(name string) (bool, error) {
	path := filepath.Join(k.ModulesDir, "modules.builtin")
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	name = ModuleName(name)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if ModuleName(sc.Text()) == name {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return false, nil
}

// ModuleName turns a module name or file path into the kernel's spelling:
// base name, no .ko/.ko.xz/... suffix, '-' written as '_' (modprobe treats
// them as the same character).
func ModuleName(s string) string {
	s = filepath.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

func (k *Kernel) buildIndex() {
	k.index = make(map[string]string)
	k.indexErr = filepath.WalkDir(filepath.Join(k.ModulesDir, "kernel"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.Contains(d.Name(), ".ko") {
			rel, err := filepath.Rel(k.ModulesDir, path)
			if err != nil {
				return err
			}
			k.index[ModuleName(d.Name())] = rel
		}
		return nil
	})
	if k.indexErr != nil {
		k.indexErr = fmt.Errorf("index modules under %s: %w", k.ModulesDir, k.indexErr)
	}
}

// ModuleClosure returns the module files (paths relative to ModulesDir)
// needed to load the named modules: each one's dependencies come before it,
// each file once. Dependencies are read from the "depends=" and
// "softdep=pre:" entries of each module's .modinfo section, as depmod does.
// Built-in modules are left out; an unknown name is an error.
func (k *Kernel) ModuleClosure(names ...string) ([]string, error) {
	k.indexOnce.Do(k.buildIndex)
	if k.indexErr != nil {
		return nil, k.indexErr
	}
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		name = ModuleName(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("resolve %s: dependency cycle %s", name, strings.Join(append(chain, name), " -> "))
		case 2:
			return nil
		}
		rel, ok := k.index[name]
		if !ok {
			if builtin, err := k.Builtin(name); err != nil {
				return err
			} else if builtin {
				state[name] = 2
				return nil
			}
			return fmt.Errorf("resolve %s: no such module in %s", name, k.ModulesDir)
		}
		state[name] = 1
		deps, soft, err := modinfoDeps(filepath.Join(k.ModulesDir, rel))
		if err != nil {
			return err
		}
		for _, d := range soft {
			// Soft dependencies may name an alias (crc32c) or a module
			// this kernel lacks; modprobe carries on without them too.
			if _, ok := k.index[ModuleName(d)]; ok {
				deps = append(deps, d)
			}
		}
		for _, d := range deps {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, rel)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modinfoDeps reads a .ko file's hard dependencies and soft "pre:"
// dependencies from its .modinfo section (NUL-separated key=value strings).
func modinfoDeps(path string) (deps, softPre []string, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil, fmt.Errorf("read module %s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, nil, fmt.Errorf("read .modinfo of %s: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		switch k, v, _ := strings.Cut(string(kv), "="); k {
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					deps = append(deps, d)
				}
			}
		case "softdep":
			// "pre: a b post: c": modprobe loads the pre: modules first.
			pre := false
			for _, w := range strings.Fields(v) {
				switch w {
				case "pre:":
					pre = true
				case "post:":
					pre = false
				default:
					if pre {
						softPre = append(softPre, w)
					}
				}
			}
		}
	}
	return deps, softPre, nil
}
