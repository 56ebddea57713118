package vm

import (
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// TB is what the harness needs from its caller. *testing.T and *testing.B
// satisfy it; so can a program that boots a VM outside go test (a demo),
// for which a missing program is fatal rather than a reason to skip.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
	TempDir() string
	Cleanup(func())
}

// requireCommands finds programs like testenv.RequireCommands: a test
// skips without them (fails under CI), anything else stops.
func requireCommands(t TB, names ...string) map[string]string {
	t.Helper()
	if tt, ok := t.(testing.TB); ok {
		return testenv.RequireCommands(tt, names...)
	}
	paths := make(map[string]string, len(names))
	for _, n := range names {
		p, err := testenv.LookPath(n)
		if err != nil {
			t.Fatalf("vm: needs %s on PATH", n)
		}
		paths[n] = p
	}
	return paths
}

// unavailable skips a test (fails it under CI) or stops anything else.
func unavailable(t TB, format string, args ...any) {
	t.Helper()
	if tt, ok := t.(testing.TB); ok {
		testenv.Unavailable(tt, format, args...)
	}
	t.Fatalf("vm: "+format, args...)
}
