package kmod

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// debianKernel is the module tree of Debian's cloud kernel package,
// fetched and cached by scripts/fetch-kernel.sh (.ci/run fetches it before
// the tests). The package ships no modules.dep: dpkg's postinst runs depmod.
type debianKernel struct {
	ModulesDir string // lib/modules/<release>
	Release    string
}

var fetchDebianKernel = sync.OnceValues(func() (debianKernel, error) {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "scripts", "fetch-kernel.sh")
	out, err := exec.Command(script).Output()
	if err != nil {
		return debianKernel{}, fmt.Errorf("run %s: %w", script, err)
	}
	trees, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "lib", "modules", "*"))
	if err != nil || len(trees) != 1 {
		return debianKernel{}, fmt.Errorf("find lib/modules/* under %s: found %d", strings.TrimSpace(string(out)), len(trees))
	}
	return debianKernel{ModulesDir: trees[0], Release: filepath.Base(trees[0])}, nil
})

// fetchKernel returns Debian's cloud kernel tree, or skips the test (fails
// it under CI) when it cannot be fetched.
func fetchKernel(t testing.TB) debianKernel {
	t.Helper()
	if _, err := testenv.LookPath("apt-get"); err != nil {
		testenv.Unavailable(t, "needs apt-get to fetch the Debian cloud kernel")
	}
	k, err := fetchDebianKernel()
	if err != nil {
		testenv.Unavailable(t, "Debian cloud kernel: %v", err)
	}
	if _, err := os.Stat(filepath.Join(k.ModulesDir, "modules.builtin")); err != nil {
		testenv.Unavailable(t, "Debian cloud kernel: %v", err)
	}
	return k
}
