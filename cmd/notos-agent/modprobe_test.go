package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

func TestModuleSpecs(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string
		wantErr string
	}{
		{[]string{"isofs"}, []string{"isofs"}, ""},
		{[]string{"a", "x=1", "y=two", "b", "c", "z=3"}, []string{"a x=1 y=two", "b", "c z=3"}, ""},
		{[]string{"a", `s="x y"`}, []string{`a s="x y"`}, ""},
		{nil, nil, "no module named"},
		{[]string{"x=1", "a"}, nil, `parameter "x=1" before any module name`},
		{[]string{"a", ""}, nil, "empty argument"},
	}
	for _, tt := range tests {
		got, err := moduleSpecs(tt.args)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("moduleSpecs(%q) (-want +got):\n%s", tt.args, diff)
		}
		if gotErr := errString(err); gotErr != tt.wantErr {
			t.Errorf("moduleSpecs(%q) error %q, want %q", tt.args, gotErr, tt.wantErr)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestModprobeCommand runs the binary with --dry-run on a fake tree. The
// module names are ones no host has, so the host's /sys/module cannot
// change the outcome.
func TestModprobeCommand(t *testing.T) {
	bin := testenv.AgentBinary(t)
	dir := t.TempDir()
	files := map[string]string{
		"modules.dep":              "kernel/notos_test_b.ko: kernel/notos_test_dep.ko\nkernel/notos_test_dep.ko:\nkernel/notos_test_gone.ko:\n",
		"modules.alias":            "alias notos-test-alias* notos_test_b\n",
		"modules.builtin":          "kernel/notos_test_builtin.ko\n",
		"kernel/notos_test_b.ko":   "\x7fELF",
		"kernel/notos_test_dep.ko": "\x7fELF",
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // lines, durations written as (D)
		wantStderr string
	}{{
		name:     "all present",
		args:     []string{"--dry-run", "notos-test-alias-1", "opt=1", "notos_test_builtin"},
		wantCode: 0,
		wantStdout: []string{
			"modules: " + dir,
			"notos_test_dep: would load (D), needed by notos_test_b",
			"notos_test_b (notos-test-alias-1): would load (D)",
			"notos_test_builtin: built-in (D)",
		},
	}, {
		name:     "missing names fail with exit 1",
		args:     []string{"--dry-run", "notos_test_missing", "notos_test_gone", "notos_test_b"},
		wantCode: 1,
		wantStdout: []string{
			"modules: " + dir,
			"notos_test_missing: failed: module not found in " + dir + " (D)",
			"notos_test_gone: failed: stat " + dir + "/kernel/notos_test_gone.ko: no such file or directory (D)",
			"notos_test_dep: would load (D), needed by notos_test_b",
			"notos_test_b: would load (D)",
		},
		wantStderr: "notos-agent: modprobe notos_test_missing: module not found in " + dir + "\n" +
			"notos-agent: modprobe notos_test_gone: stat " + dir + "/kernel/notos_test_gone.ko: no such file or directory\n",
	}, {
		name:       "no names is a usage error",
		args:       []string{"--dry-run"},
		wantCode:   2,
		wantStderr: "notos-agent modprobe: no module named\n",
	}, {
		name:       "a parameter before any name is a usage error",
		args:       []string{"x=1", "notos_test_b"},
		wantCode:   2,
		wantStderr: "notos-agent modprobe: parameter \"x=1\" before any module name\n",
	}, {
		name:       "a tree that does not exist",
		args:       []string{"--modules-dir", dir + "/nosuch", "isofs"},
		wantCode:   1,
		wantStderr: "notos-agent: modprobe: module tree: stat " + dir + "/nosuch: no such file or directory\n",
	}}
	duration := regexp.MustCompile(`\([0-9.]+[µnm]?s\)`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"modprobe", "--modules-dir", dir}, tt.args...)
			cmd := exec.Command(bin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				if l != "" {
					lines = append(lines, duration.ReplaceAllString(l, "(D)"))
				}
			}
			if diff := cmp.Diff(tt.wantStdout, lines); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			gotStderr := stderr.String()
			if tt.wantCode == 2 {
				gotStderr, _, _ = strings.Cut(gotStderr, "Usage:")
			}
			if diff := cmp.Diff(tt.wantStderr, gotStderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}
