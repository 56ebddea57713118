package kmod

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// debianKernel is the module tree of Debian's cloud kernel package as
// scripts/fetch-kernel.sh unpacks it (.ci/run fetches it before the tests).
// The package ships no modules.dep: dpkg's postinst runs depmod.
type debianKernel struct {
	ModulesDir string // lib/modules/<release>
	Release    string
}

// fetchedKernel finds the kernel in fetch-kernel.sh's cache without
// fetching it (tier-0 tests download nothing), or skips the test (fails
// it under CI) when it is not there.
func fetchedKernel(t testing.TB) debianKernel {
	t.Helper()
	cache := os.Getenv("NOTOS_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "notos-agent")
	}
	done, _ := filepath.Glob(filepath.Join(cache, "kernel", "*", ".complete"))
	if len(done) == 0 {
		testenv.Unavailable(t, "no Debian cloud kernel in %s/kernel: run scripts/fetch-kernel.sh", cache)
	}
	// Should several packages have been fetched, the last in name order.
	pkg := filepath.Dir(slices.Max(done))
	trees, _ := filepath.Glob(filepath.Join(pkg, "lib", "modules", "*"))
	if len(trees) != 1 {
		testenv.Unavailable(t, "%s: want one lib/modules/* directory, found %d", pkg, len(trees))
	}
	return debianKernel{ModulesDir: trees[0], Release: filepath.Base(trees[0])}
}
