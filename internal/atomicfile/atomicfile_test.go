package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

var opts = Options{Perm: 0o600, UID: -1, GID: -1}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestWriteNewThenUnchanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "f")
	changed, err := Write(path, []byte("one\n"), Options{Perm: 0o600, UID: -1, GID: -1, DirPerm: 0o755})
	if err != nil || !changed {
		t.Fatalf("first Write = %v, %v; want true, nil", changed, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "one\n" {
		t.Errorf("content %q, want %q", got, "one\n")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	ino := inode(t, path)
	// The same content and mode: nothing is written, the inode stays.
	if changed, err := Write(path, []byte("one\n"), opts); err != nil || changed {
		t.Fatalf("rerun Write = %v, %v; want false, nil", changed, err)
	}
	if inode(t, path) != ino {
		t.Error("rerun replaced the file")
	}
	// A mode change alone is a change, made by a new file.
	if changed, err := Write(path, []byte("one\n"), Options{Perm: 0o644, UID: -1, GID: -1}); err != nil || !changed {
		t.Fatalf("Write with a new mode = %v, %v; want true, nil", changed, err)
	}
	if inode(t, path) == ino {
		t.Error("a changed file was written in place, not replaced")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary file left)", len(entries))
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	realDir := filepath.Join(dir, "real")
	if err := os.Mkdir(realDir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	dirLink := filepath.Join(dir, "dirlink")
	fifo := filepath.Join(dir, "fifo")
	for _, err := range []error{
		os.Symlink(victim, link),
		os.Symlink(realDir, dirLink),
		syscall.Mkfifo(fifo, 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		path    string
		symlink bool
	}{
		{"file is a symlink", link, true},
		{"directory is a symlink", filepath.Join(dirLink, "f"), true},
		{"not a regular file", fifo, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed, err := Write(tt.path, []byte("new\n"), opts)
			if err == nil || changed {
				t.Fatalf("Write(%s) = %v, %v; want an error", tt.path, changed, err)
			}
			if got := errors.Is(err, ErrSymlink); got != tt.symlink {
				t.Errorf("errors.Is(%v, ErrSymlink) = %v, want %v", err, got, tt.symlink)
			}
		})
	}
	if got, _ := os.ReadFile(victim); string(got) != "keep\n" {
		t.Errorf("link target now holds %q, want it untouched", got)
	}
	if entries, _ := os.ReadDir(realDir); len(entries) != 0 {
		t.Errorf("linked directory gained %d entries, want none", len(entries))
	}
}
