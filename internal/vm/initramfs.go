package vm

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// Initramfs is a guest root file system assembled in a temporary directory
// and packed as a newc cpio archive that QEMU hands to the kernel. Every
// method takes guest paths ("/bin/sh"); a failure fails the test.
type Initramfs struct {
	t   TB
	dir string
}

// NewInitramfs starts an empty root with the usual mount points.
func NewInitramfs(t TB) *Initramfs {
	t.Helper()
	r := &Initramfs{t: t, dir: t.TempDir()}
	for _, d := range []string{"bin", "sbin", "dev", "etc", "proc", "sys", "run", "tmp", "mnt", "root"} {
		r.Mkdir("/" + d)
	}
	return r
}

// Dir is the host directory holding the guest root.
func (r *Initramfs) Dir() string { return r.dir }

// HostPath is where a guest path lives on the host.
func (r *Initramfs) HostPath(guest string) string {
	return filepath.Join(r.dir, filepath.FromSlash(strings.TrimPrefix(guest, "/")))
}

// Mkdir creates a guest directory and its parents.
func (r *Initramfs) Mkdir(guest string) {
	r.t.Helper()
	if err := os.MkdirAll(r.HostPath(guest), 0o755); err != nil {
		r.t.Fatalf("initramfs: mkdir %s: %v", guest, err)
	}
}

// WriteFile writes a guest file, creating its directory.
func (r *Initramfs) WriteFile(guest string, data []byte, mode fs.FileMode) {
	r.t.Helper()
	r.Mkdir(filepath.Dir(guest))
	p := r.HostPath(guest)
	if err := os.WriteFile(p, data, mode); err != nil {
		r.t.Fatalf("initramfs: write %s: %v", guest, err)
	}
	// WriteFile leaves an existing file's mode alone and umask applies.
	if err := os.Chmod(p, mode); err != nil {
		r.t.Fatalf("initramfs: chmod %s: %v", guest, err)
	}
}

// CopyFile copies a host file (following symlinks) to a guest path with
// the host file's permissions.
func (r *Initramfs) CopyFile(guest, host string) {
	r.t.Helper()
	data, err := os.ReadFile(host)
	if err != nil {
		r.t.Fatalf("initramfs: read %s: %v", host, err)
	}
	fi, err := os.Stat(host)
	if err != nil {
		r.t.Fatalf("initramfs: stat %s: %v", host, err)
	}
	r.WriteFile(guest, data, fi.Mode().Perm())
}

// Symlink creates a guest symlink; an existing entry is left alone.
func (r *Initramfs) Symlink(guest, target string) {
	r.t.Helper()
	r.Mkdir(filepath.Dir(guest))
	if err := os.Symlink(target, r.HostPath(guest)); err != nil && !os.IsExist(err) {
		r.t.Fatalf("initramfs: symlink %s -> %s: %v", guest, target, err)
	}
}

// AddInit installs the script the kernel runs as PID 1 (/init).
func (r *Initramfs) AddInit(script string) {
	r.t.Helper()
	r.WriteFile("/init", []byte(script), 0o755)
}

// AddAgent installs the static notos-agent binary (testenv.AgentBinary) as
// /bin/notos-agent and returns that guest path. Outside a test, copy a
// built binary with CopyFile.
func (r *Initramfs) AddAgent() string {
	r.t.Helper()
	tt, ok := r.t.(testing.TB)
	if !ok {
		r.t.Fatalf("initramfs: AddAgent builds the agent for a test; copy a built one with CopyFile")
	}
	r.CopyFile("/bin/notos-agent", testenv.AgentBinary(tt))
	return "/bin/notos-agent"
}

// AddBusybox installs the host's busybox (busybox-static) as /bin/busybox
// with a symlink for every applet where `busybox --list-full` puts it
// (/bin/sh, /sbin/poweroff, /usr/bin/awk, ...).
func (r *Initramfs) AddBusybox() {
	r.t.Helper()
	bin := requireCommands(r.t, "busybox")["busybox"]
	r.AddHostBinary("/bin/busybox", bin)
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		r.t.Fatalf("initramfs: %s --list-full: %v", bin, err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" {
			continue
		}
		r.Symlink("/"+applet, "/bin/busybox")
	}
}

// AddRunit installs Debian's runit: /sbin/runit (PID 1), and runsvdir,
// runsv, sv, chpst and svlogd in /usr/bin, with their libraries. The test
// writes /etc/runit/1, 2 and 3 and makes runit the kernel's init, e.g.
// Symlink("/init", "/sbin/runit"). Debian's runit takes its stage-3 and
// reboot switches from /run/runit.stopit and /run/runit.reboot (mode 100
// means set); after stage 3 it powers off unless reboot is set. With
// /run/runit.stopit set, ctrl-alt-del (VM.Monitor "sendkey
// ctrl-alt-delete") runs /etc/runit/ctrlaltdel and then stage 3.
func (r *Initramfs) AddRunit() {
	r.t.Helper()
	paths := requireCommands(r.t, "runit", "runsvdir", "runsv", "sv", "chpst", "svlogd")
	r.AddHostBinary("/sbin/runit", paths["runit"])
	for _, p := range []string{"runsvdir", "runsv", "sv", "chpst", "svlogd"} {
		r.AddHostBinary("/usr/bin/"+p, paths[p])
	}
}

// AddHostBinary copies a host program to a guest path together with the
// shared libraries and the ELF interpreter that ldd lists for it, each at
// the path the dynamic loader will look for. A static binary is copied
// alone.
func (r *Initramfs) AddHostBinary(guest, host string) {
	r.t.Helper()
	r.CopyFile(guest, host)
	libs, err := sharedLibraries(host)
	if err != nil {
		r.t.Fatalf("initramfs: %v", err)
	}
	for _, lib := range libs {
		if _, err := os.Lstat(r.HostPath(lib)); err == nil {
			continue
		}
		r.CopyFile(lib, lib)
	}
}

// sharedLibraries runs ldd on a program and returns the absolute paths it
// resolves, the ELF interpreter included; nil for a static program.
func sharedLibraries(program string) ([]string, error) {
	ldd, err := testenv.LookPath("ldd")
	if err != nil {
		return nil, fmt.Errorf("find ldd: %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(ldd, program)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if bytes.Contains(stdout.Bytes(), []byte("not a dynamic executable")) ||
		bytes.Contains(stderr.Bytes(), []byte("not a dynamic executable")) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w\n%s", program, err, stderr.Bytes())
	}
	return parseLdd(stdout.String())
}

// parseLdd reads glibc ldd output:
//
//	linux-vdso.so.1 (0x...)                       (in the kernel: skipped)
//	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)
//	/lib64/ld-linux-x86-64.so.2 (0x...)
func parseLdd(out string) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line == "statically linked" {
			continue
		}
		if _, after, ok := strings.Cut(line, "=>"); ok {
			path := strings.TrimSpace(after)
			if i := strings.Index(path, " ("); i >= 0 {
				path = path[:i]
			}
			if path == "not found" || !strings.HasPrefix(path, "/") {
				return nil, fmt.Errorf("ldd: library not found: %s", line)
			}
			libs = append(libs, path)
			continue
		}
		if f := strings.Fields(line); strings.HasPrefix(f[0], "/") {
			libs = append(libs, f[0])
		}
	}
	return libs, sc.Err()
}

// Compression is how module files are stored in the guest's tree.
type Compression string

const (
	Uncompressed Compression = ""
	XZ           Compression = "xz"  // .ko.xz, as kmod expects: xz --check=crc32
	Zstd         Compression = "zst" // .ko.zst
	Gzip         Compression = "gz"  // .ko.gz: needs a depmod built with zlib, unlike Debian 12's
)

// compressor is the host command writing the compressed file to stdout;
// the flags are the ones Linux's scripts/Makefile.modinst uses.
func (c Compression) compressor() []string {
	switch c {
	case XZ:
		return []string{"xz", "--check=crc32", "--lzma2=dict=1MiB", "-c"}
	case Zstd:
		return []string{"zstd", "-q", "-19", "-c"}
	case Gzip:
		return []string{"gzip", "-n", "-9", "-c"}
	}
	return nil
}

// AddModules copies the named modules and everything they depend on from
// the kernel's tree to /lib/modules/<release>/, stored with the given
// compression, together with the kernel's modules.builtin, .builtin.modinfo
// and .order, then regenerates modules.dep and the other index files for
// that subset with `depmod -b`. It returns the module files copied
// (relative to the module directory), dependencies first.
func (r *Initramfs) AddModules(k *Kernel, c Compression, names ...string) []string {
	r.t.Helper()
	tools := []string{"depmod"}
	if cmd := c.compressor(); cmd != nil {
		tools = append(tools, cmd[0])
	}
	paths := requireCommands(r.t, tools...)
	rels, err := k.ModuleClosure(names...)
	if err != nil {
		r.t.Fatalf("initramfs: %v", err)
	}
	guestDir := "/lib/modules/" + k.Release
	var copied []string
	for _, rel := range rels {
		src := filepath.Join(k.ModulesDir, rel)
		if c == Uncompressed {
			r.CopyFile(guestDir+"/"+rel, src)
			copied = append(copied, rel)
			continue
		}
		argv := c.compressor()
		var stderr bytes.Buffer
		cmd := exec.Command(paths[argv[0]], append(argv[1:], src)...)
		cmd.Stderr = &stderr
		data, err := cmd.Output()
		if err != nil {
			r.t.Fatalf("initramfs: %s %s: %v\n%s", strings.Join(argv, " "), src, err, stderr.Bytes())
		}
		dst := rel + "." + string(c)
		r.WriteFile(guestDir+"/"+dst, data, 0o644)
		copied = append(copied, dst)
	}
	for _, index := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		r.CopyFile(guestDir+"/"+index, filepath.Join(k.ModulesDir, index))
	}
	if out, err := exec.Command(paths["depmod"], "-b", r.dir, k.Release).CombinedOutput(); err != nil {
		r.t.Fatalf("initramfs: depmod -b %s %s: %v\n%s", r.dir, k.Release, err, out)
	}
	// depmod silently skips files of a compression it was built without
	// (Debian 12's kmod has no zlib: .ko.gz).
	dep, err := os.ReadFile(r.HostPath(guestDir + "/modules.dep"))
	if err != nil {
		r.t.Fatalf("initramfs: %v", err)
	}
	indexed := map[string]bool{}
	for line := range strings.Lines(string(dep)) {
		if path, _, ok := strings.Cut(line, ":"); ok {
			indexed[path] = true
		}
	}
	for _, f := range copied {
		if !indexed[f] {
			r.t.Fatalf("initramfs: depmod -b %s %s left %s out of modules.dep (built without its compression?)", r.dir, k.Release, f)
		}
	}
	return copied
}

// Pack writes the root as a newc cpio archive (uncompressed: the kernel
// unpacks it without spending emulated CPU on decompression) with a
// /dev/console node, so PID 1 has the console as stdin, stdout and stderr
// before it mounts devtmpfs. It returns the archive's path.
func (r *Initramfs) Pack() string {
	r.t.Helper()
	r.Mkdir("/dev")
	f, err := os.CreateTemp(r.t.TempDir(), "initramfs-*.cpio")
	if err != nil {
		r.t.Fatalf("initramfs: create archive: %v", err)
	}
	defer f.Close()
	console := cpioEntry{name: "dev/console", mode: syscall.S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1}
	if err := writeCPIO(f, r.dir, []cpioEntry{console}); err != nil {
		r.t.Fatalf("initramfs: %v", err)
	}
	if err := f.Close(); err != nil {
		r.t.Fatalf("initramfs: close %s: %v", f.Name(), err)
	}
	if fi, err := os.Stat(f.Name()); err == nil {
		r.t.Logf("initramfs: %s, %.1f MiB", f.Name(), float64(fi.Size())/(1<<20))
	}
	return f.Name()
}
