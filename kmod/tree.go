package kmod

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// candidates lists where modprobe-like tools look for the tree of a
// release, in order. moduleDirEnv is $MODULE_DIR: NixOS's kmod reads it as
// the directory holding <release>/ (NixOS sets it to
// /run/booted-system/kernel-modules/lib/modules); a value that is itself a
// tree is taken as such.
func candidates(release, moduleDirEnv string) []string {
	var c []string
	if moduleDirEnv != "" {
		c = append(c, filepath.Join(moduleDirEnv, release), moduleDirEnv)
	}
	return append(c,
		"/lib/modules/"+release,
		"/usr/lib/modules/"+release,
		"/run/booted-system/kernel-modules/lib/modules/"+release,
	)
}

// findTree returns the first candidate under root that holds modules.dep.
// When none does, it returns the first that is a directory, so that the
// error comes from reading its modules.dep and names the file.
func findTree(root, release, moduleDirEnv string) (string, error) {
	if release == "" || strings.ContainsAny(release, "/\x00") || release == "." || release == ".." {
		return "", fmt.Errorf("find module tree: bad kernel release %q", release)
	}
	firstDir := ""
	var tried []string
	for _, c := range candidates(release, moduleDirEnv) {
		dir := filepath.Join(root, c)
		tried = append(tried, c)
		if fi, err := os.Stat(filepath.Join(dir, "modules.dep")); err == nil && fi.Mode().IsRegular() {
			return c, nil
		}
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() && firstDir == "" {
			firstDir = c
		}
	}
	if firstDir != "" {
		return firstDir, nil
	}
	return "", fmt.Errorf("find module tree for %s: %w: tried %s", release, os.ErrNotExist, strings.Join(tried, ", "))
}

// explicitTree checks a tree named by the caller (--modules-dir).
func explicitTree(root, dir string) (string, error) {
	fi, err := os.Stat(filepath.Join(root, dir))
	if err != nil {
		return "", fmt.Errorf("module tree: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("module tree %s: not a directory", dir)
	}
	return dir, nil
}
