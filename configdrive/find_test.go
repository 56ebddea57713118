package configdrive

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeSys is a SysRoot and DevRoot pair whose "devices" are image files.
type fakeSys struct{ sys, dev string }

func newFakeSys(t *testing.T) fakeSys {
	t.Helper()
	root := t.TempDir()
	f := fakeSys{sys: filepath.Join(root, "sys"), dev: filepath.Join(root, "dev")}
	for _, d := range []string{filepath.Join(f.sys, "class/block"), f.dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// add makes block device name appear: its /dev node first (a copy of
// image, or nothing when image is ""), then its sysfs directory in one
// rename, as the kernel makes it appear whole. It returns errors rather
// than failing the test so that a goroutine may call it.
func (f fakeSys) add(name string, sectors int64, image string) error {
	if image != "" {
		b, err := os.ReadFile(image)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(f.dev, name), b, 0o600); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(f.sys, ".new-")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "size"), []byte(strconv.FormatInt(sectors, 10)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "dev"), []byte("7:99\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(f.sys, "class/block", name))
}

func (f fakeSys) mustAdd(t *testing.T, name string, sectors int64, image string) {
	t.Helper()
	if err := f.add(name, sectors, image); err != nil {
		t.Fatalf("add device %s: %v", name, err)
	}
}

func imageSectors(t *testing.T, img string) int64 {
	t.Helper()
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size() / 512
}

func TestFind(t *testing.T) {
	iso := buildImage(t, kindRR, doLayout, "config-2")
	fat := buildImage(t, kindFAT12, doLayout, "CONFIG-2")
	other := buildImage(t, kindRR, doLayout, "rootfs")
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	type dev struct {
		name    string
		sectors int64
		image   string
	}
	tests := []struct {
		name  string
		label string
		devs  []dev
		want  string
	}{
		{
			name:  "iso among others",
			label: "config-2",
			devs: []dev{
				{"loop0", 0, ""}, // unattached loop device: skipped quietly
				{"sr0", 0, ""},   // empty CD tray
				{"vda", 128, garbage},
				{"vda1", imageSectors(t, other), other},
				{"vdb", imageSectors(t, iso), iso},
			},
			want: "vdb",
		},
		{
			name:  "vfat CONFIG-2 matched without regard to case",
			label: "config-2",
			devs:  []dev{{"sdb", imageSectors(t, fat), fat}},
			want:  "sdb",
		},
		{
			name:  "label asked in upper case",
			label: "CONFIG-2",
			devs:  []dev{{"vdb", imageSectors(t, iso), iso}},
			want:  "vdb",
		},
		{
			name:  "default label",
			label: "",
			devs:  []dev{{"vdb", imageSectors(t, iso), iso}},
			want:  "vdb",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSys(t)
			for _, d := range tt.devs {
				f.mustAdd(t, d.name, d.sectors, d.image)
			}
			got, err := Find(context.Background(), FindOptions{Label: tt.label, SysRoot: f.sys, DevRoot: f.dev})
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if want := filepath.Join(f.dev, tt.want); got != want {
				t.Errorf("Find = %q, want %q", got, want)
			}
		})
	}
}

// TestFindLateDrive: the drive appears after the first scans (modules
// still probing); Find keeps looking until it does.
func TestFindLateDrive(t *testing.T) {
	iso := buildImage(t, kindRR, doLayout, "config-2")
	f := newFakeSys(t)
	f.mustAdd(t, "vda", 128, "")
	sectors := imageSectors(t, iso)

	scanned := make(chan struct{})
	var once sync.Once
	added := make(chan error, 1)
	go func() {
		<-scanned // the first scan found nothing
		added <- f.add("vdb", sectors, iso)
	}()
	o := FindOptions{SysRoot: f.sys, DevRoot: f.dev, Wait: time.Minute}
	o.afterScan = func() { once.Do(func() { close(scanned) }) }
	got, err := Find(context.Background(), o)
	once.Do(func() { close(scanned) }) // release the goroutine if Find never scanned
	if aerr := <-added; aerr != nil {
		t.Fatalf("add device vdb: %v", aerr)
	}
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if want := filepath.Join(f.dev, "vdb"); got != want {
		t.Errorf("Find = %q, want %q", got, want)
	}
}

func TestFindNoDrive(t *testing.T) {
	other := buildImage(t, kindRR, doLayout, "rootfs")
	f := newFakeSys(t)
	f.mustAdd(t, "vda", imageSectors(t, other), other)
	// A node that cannot be read (here a directory) is named in the error;
	// a device with no filesystem we know (vda's "rootfs" ISO is one we
	// know, with another label) is not a problem worth naming.
	if err := os.Mkdir(filepath.Join(f.dev, "vdc"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.mustAdd(t, "vdc", 128, "")
	const wait = 300 * time.Millisecond
	start := time.Now()
	dev, err := Find(context.Background(), FindOptions{SysRoot: f.sys, DevRoot: f.dev, Wait: wait})
	if !errors.Is(err, ErrNoDrive) {
		t.Fatalf("Find = %q, %v; want ErrNoDrive", dev, err)
	}
	if elapsed := time.Since(start); elapsed < wait {
		t.Errorf("Find gave up after %v, before the %v wait", elapsed, wait)
	}
	if !strings.Contains(err.Error(), "unreadable: probe "+filepath.Join(f.dev, "vdc")) || strings.Contains(err.Error(), "vda") {
		t.Errorf("error %q should name vdc as unreadable, and vda not at all", err)
	}
	t.Logf("error: %v", err)

	// No sysfs at all (not mounted yet) is no drive, not a failure.
	empty := t.TempDir()
	if _, err := Find(context.Background(), FindOptions{SysRoot: empty, DevRoot: empty}); !errors.Is(err, ErrNoDrive) {
		t.Errorf("Find(no sysfs) = %v, want ErrNoDrive", err)
	}
}

func TestFindCancelled(t *testing.T) {
	f := newFakeSys(t)
	ctx, cancel := context.WithCancel(context.Background())
	o := FindOptions{SysRoot: f.sys, DevRoot: f.dev, Wait: time.Hour}
	o.afterScan = cancel
	if _, err := Find(ctx, o); !errors.Is(err, context.Canceled) {
		t.Errorf("Find = %v, want context.Canceled", err)
	}
}

// TestEnsureNode: without udev, Find makes the missing node from sysfs.
// mknod needs root (CAP_MKNOD).
func TestEnsureNode(t *testing.T) {
	requireTier1(t)
	dir := t.TempDir()
	sysDir := filepath.Join(dir, "sys-vdb")
	if err := os.MkdirAll(sysDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sysDir, "dev"), []byte("254:16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(dir, "dev", "vdb")
	for i := range 2 { // the second call finds the node and leaves it
		if err := ensureNode(node, sysDir); err != nil {
			t.Fatalf("ensureNode #%d: %v", i+1, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(node, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || unix.Major(st.Rdev) != 254 || unix.Minor(st.Rdev) != 16 {
		t.Errorf("node mode %o rdev %d:%d, want block 254:16", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}

	if err := os.WriteFile(filepath.Join(sysDir, "dev"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ensureNode(filepath.Join(dir, "dev", "vdc"), sysDir); err == nil {
		t.Error("ensureNode with a bad dev file succeeded")
	}
}

// TestFindStuckDevice: a device that never answers (a FIFO with no writer:
// its open blocks) neither hides the drive nor holds Find past its wait.
func TestFindStuckDevice(t *testing.T) {
	iso := buildImage(t, kindRR, doLayout, "config-2")
	f := newFakeSys(t)
	stuck := filepath.Join(f.dev, "vda")
	if err := unix.Mkfifo(stuck, 0o600); err != nil {
		t.Fatal(err)
	}
	// Release the abandoned probe at the end: a writer that closes gives it EOF.
	t.Cleanup(func() {
		if w, err := os.OpenFile(stuck, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	})
	f.mustAdd(t, "vda", 1<<20, "")
	f.mustAdd(t, "vdb", imageSectors(t, iso), iso)

	start := time.Now()
	got, err := Find(context.Background(), FindOptions{SysRoot: f.sys, DevRoot: f.dev})
	if err != nil || got != filepath.Join(f.dev, "vdb") {
		t.Errorf("Find = %q, %v; want %s/vdb", got, err, f.dev)
	}
	if elapsed := time.Since(start); elapsed > 10*probeTimeout {
		t.Errorf("Find took %v with a stuck device, want about %v", elapsed, probeTimeout)
	}

	// Alone, the stuck device gives ErrNoDrive once the wait is over.
	if err := os.RemoveAll(filepath.Join(f.sys, "class/block/vdb")); err != nil {
		t.Fatal(err)
	}
	const wait = 2 * probeTimeout
	start = time.Now()
	if _, err := Find(context.Background(), FindOptions{SysRoot: f.sys, DevRoot: f.dev, Wait: wait}); !errors.Is(err, ErrNoDrive) || !strings.Contains(err.Error(), stuck+": probe still running") {
		t.Errorf("Find(only a stuck device) = %v, want ErrNoDrive naming the stuck device", err)
	}
	if elapsed := time.Since(start); elapsed > wait+5*probeTimeout {
		t.Errorf("Find took %v, want about %v", elapsed, wait)
	}
}
