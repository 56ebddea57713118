package kmod

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
	"golang.org/x/sys/unix"
)

// testRelease is the kernel release of fake trees.
const testRelease = "6.1.0-test"

// fakeSystem is a root directory holding a module tree, /sys/module and
// /proc/modules, and a kernel that knows the tree's module images.
type fakeSystem struct {
	t       *testing.T
	root    string
	tree    string // system path of the module tree
	release string
	kernel  *fakeKernel
}

func newFakeSystem(t *testing.T) *fakeSystem {
	t.Helper()
	s := &fakeSystem{t: t, root: t.TempDir(), tree: "/lib/modules/" + testRelease, release: testRelease}
	s.kernel = &fakeKernel{t: t, root: s.root, images: map[string]string{}, files: map[string]string{}, refuse: map[string]error{}}
	return s
}

// write writes a file at a system path under the root.
func (s *fakeSystem) write(p string, data []byte) {
	s.t.Helper()
	full := filepath.Join(s.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// index writes an index file of the tree.
func (s *fakeSystem) index(name, text string) { s.write(s.tree+"/"+name, []byte(text)) }

// fakeImage is a module image: an ELF-looking header naming the module,
// then incompressible bytes and a compressible run, so that a decoding
// mistake anywhere changes it.
func fakeImage(name string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "\x7fELF fake module %s\n", name)
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(name[0])))
	for range 8 << 10 {
		b.WriteByte(byte(rng.Uint32()))
	}
	b.Write(bytes.Repeat([]byte(name+" "), 4<<10))
	return b.Bytes()
}

// module writes the plain module file rel (relative to the tree) and
// teaches the kernel its image.
func (s *fakeSystem) module(rel string) []byte {
	s.t.Helper()
	name, err := moduleName(rel)
	if err != nil {
		s.t.Fatal(err)
	}
	img := fakeImage(name)
	s.kernel.images[string(img)] = name
	s.write(s.tree+"/"+rel, img)
	return img
}

// compressedModule writes rel (ending in .xz, .zst or .gz) compressed by
// the real tool with args, and teaches the kernel both forms.
func (s *fakeSystem) compressedModule(rel string, tool string, args ...string) {
	s.t.Helper()
	name, err := moduleName(rel)
	if err != nil {
		s.t.Fatal(err)
	}
	img := fakeImage(name)
	s.kernel.images[string(img)] = name
	s.compressedFile(rel, img, tool, args...)
}

// compressedFile writes img as rel, compressed by the real tool, and
// teaches the kernel the compressed form.
func (s *fakeSystem) compressedFile(rel string, img []byte, tool string, args ...string) {
	s.t.Helper()
	path := testenv.RequireCommands(s.t, tool)[tool]
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(img)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("%s %v: %v: %s", tool, args, err, stderr.Bytes())
	}
	name, _ := moduleName(rel)
	s.kernel.files[string(out)] = name
	s.write(s.tree+"/"+rel, out)
}

// loadedModule makes m look loaded: /sys/module/m/initstate "live".
func (s *fakeSystem) loadedModule(m string) {
	s.write("/sys/module/"+m+"/initstate", []byte("live\n"))
}

func (s *fakeSystem) loader() *Loader {
	return &Loader{Root: s.root, Release: s.release, Kernel: s.kernel}
}

// call is one syscall the fake kernel received.
type call struct {
	Syscall string // "finit_module" or "init_module"
	Module  string // the module whose image (or file) it was given
	Params  string
	Flags   int
}

// fakeKernel accepts exactly the images it was taught, byte for byte, and
// refuses anything else with ENOEXEC as the kernel refuses a non-ELF file.
// A module it loads shows up in /sys/module, so loading it twice is EEXIST.
type fakeKernel struct {
	t      *testing.T
	root   string
	images map[string]string // plain image → module
	files  map[string]string // compressed file → module
	// decompresses: built with CONFIG_MODULE_DECOMPRESS. Without it,
	// MODULE_INIT_COMPRESSED_FILE gets EOPNOTSUPP, as from Debian's 6.1.
	decompresses bool
	refuse       map[string]error // module → errno to refuse it with
	// noFinit: a kernel older than 3.8, without finit_module (ENOSYS).
	noFinit bool
	calls   []call
}

func (k *fakeKernel) FinitModule(fd int, params string, flags int) error {
	if k.noFinit {
		k.calls = append(k.calls, call{"finit_module", "", params, flags})
		return unix.ENOSYS
	}
	var b bytes.Buffer
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		b.Write(buf[:n])
		off += int64(n)
	}
	if flags&^unix.MODULE_INIT_COMPRESSED_FILE != 0 {
		return unix.EINVAL
	}
	var m string
	if flags&unix.MODULE_INIT_COMPRESSED_FILE != 0 {
		if !k.decompresses {
			k.calls = append(k.calls, call{"finit_module", "", params, flags})
			return unix.EOPNOTSUPP
		}
		m = k.files[b.String()]
	} else {
		m = k.images[b.String()]
	}
	k.calls = append(k.calls, call{"finit_module", m, params, flags})
	return k.insert(m)
}

func (k *fakeKernel) InitModule(image []byte, params string) error {
	m := k.images[string(image)]
	k.calls = append(k.calls, call{"init_module", m, params, 0})
	return k.insert(m)
}

func (k *fakeKernel) insert(m string) error {
	if m == "" {
		return unix.ENOEXEC
	}
	if err := k.refuse[m]; err != nil {
		return err
	}
	state := filepath.Join(k.root, "sys/module", m, "initstate")
	if _, err := os.Stat(state); err == nil {
		return unix.EEXIST
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		return err
	}
	return os.WriteFile(state, []byte("live\n"), 0o644)
}
