package vm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// Disk images for Config.Disks, made from host directories without
// mounting anything (no root, no loop devices).

// Ext4Image makes a raw ext4 image of sizeMiB holding the contents of dir
// (mke2fs -d), with the file system label label (blkid's LABEL=, e.g.
// "rootfs" for DigitalOcean's layout). Owners and modes come from dir.
func Ext4Image(t TB, dir, label string, sizeMiB int) string {
	t.Helper()
	mke2fs := requireCommands(t, "mke2fs")["mke2fs"]
	img := filepath.Join(t.TempDir(), label+".ext4")
	cmd := exec.Command(mke2fs, "-q", "-F", "-t", "ext4", "-L", label, "-d", dir, img, strconv.Itoa(sizeMiB)+"M")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vm: mke2fs -t ext4 -L %s -d %s %s: %v\n%s", label, dir, img, err, out)
	}
	return img
}

// Ext4ReadFile reads a file out of an ext4 image with debugfs, for
// asserting on what a guest wrote once it has powered off.
func Ext4ReadFile(image, path string) ([]byte, error) {
	debugfs, err := testenv.LookPath("debugfs")
	if err != nil {
		return nil, fmt.Errorf("find debugfs: %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(debugfs, "-R", "cat "+path, image)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("debugfs -R 'cat %s' %s: %w: %s", path, image, err, stderr.Bytes())
	}
	// debugfs exits 0 even when the file is missing; it says so on stderr
	// after its version banner.
	for line := range strings.Lines(stderr.String()) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "debugfs ") {
			return nil, fmt.Errorf("debugfs -R 'cat %s' %s: %s", path, image, line)
		}
	}
	return stdout.Bytes(), nil
}

// ISOImage makes an ISO9660 image of dir with genisoimage, volume label
// label and extra flags: OpenStack writes config drives with
// ISOImage(t, dir, "config-2", "-r", "-J") (Rock Ridge and Joliet names).
func ISOImage(t TB, dir, label string, flags ...string) string {
	t.Helper()
	genisoimage := requireCommands(t, "genisoimage")["genisoimage"]
	img := filepath.Join(t.TempDir(), label+".iso")
	args := append([]string{"-quiet", "-V", label, "-o", img}, flags...)
	if out, err := exec.Command(genisoimage, append(args, dir)...).CombinedOutput(); err != nil {
		t.Fatalf("vm: genisoimage %s %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return img
}

// WriteTree writes files (path relative to dir → contents) under dir,
// creating directories, and returns dir: the source of an image.
func WriteTree(t TB, dir string, files map[string]string) string {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("vm: mkdir %s: %v", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatalf("vm: write %s: %v", p, err)
		}
	}
	return dir
}
