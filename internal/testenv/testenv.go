// Package testenv decides whether a test that needs more than the Go
// toolchain can run here. Outside CI a missing prerequisite skips the test
// with the reason; with CI=true it fails it, so CI never passes by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test, or fails it under CI, saying why.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// RequireRoot needs uid 0 (network namespaces, loop devices, mounts).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root")
	}
}

// LookPath finds a program on PATH or in the sbin directories, which a
// non-login root shell may not have on PATH.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// RequireCommands returns the full paths of the named programs, or skips
// (fails under CI) naming the first one missing.
func RequireCommands(t testing.TB, names ...string) map[string]string {
	t.Helper()
	paths := make(map[string]string, len(names))
	for _, n := range names {
		p, err := LookPath(n)
		if err != nil {
			Unavailable(t, "needs %s on PATH (installed by .ci/run)", n)
		}
		paths[n] = p
	}
	return paths
}

// AgentBinary returns the path of a static notos-agent binary for tests
// that run the real program (in a namespace or a VM). It uses
// $NOTOS_AGENT_BIN (set by the Makefile to bin/notos-agent) and otherwise
// builds one into the test's temporary directory.
func AgentBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NOTOS_AGENT_BIN"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	out := t.TempDir() + "/notos-agent"
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/notos-agent/notos-agent/cmd/notos-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build notos-agent: %v\n%s", err, b)
	}
	return out
}
