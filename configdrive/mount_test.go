package configdrive

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fakeMounter stands in for mount(2): "mounting" copies a tree into the
// target, "unmounting" empties it, and every call is recorded.
type fakeMounter struct {
	tree       string // what the "filesystem" holds
	mountErr   error
	unmountErr error
	calls      []string
	target     string
}

func (m *fakeMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	m.calls = append(m.calls, "mount "+source+" "+fstype+" "+flagNames(flags)+" "+data)
	m.target = target
	if m.mountErr != nil {
		return m.mountErr
	}
	if m.tree == "" {
		return nil
	}
	return os.CopyFS(target, os.DirFS(m.tree))
}

func (m *fakeMounter) Unmount(target string) error {
	m.calls = append(m.calls, "unmount")
	if target != m.target {
		return errors.New("unmount of a directory that was not mounted")
	}
	if m.unmountErr != nil {
		return m.unmountErr
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(target, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func flagNames(f uintptr) string {
	var out []string
	for _, n := range []struct {
		bit  uintptr
		name string
	}{{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"}, {unix.MS_NOEXEC, "noexec"}} {
		if f&n.bit != 0 {
			out = append(out, n.name)
			f &^= n.bit
		}
	}
	if f != 0 {
		out = append(out, "other")
	}
	return strings.Join(out, ",")
}

// TestReadFilesKernelFallback: when userspace reading fails on a block
// device, ReadFiles mounts it read-only with the type Probe found, reads,
// unmounts and removes its directory; on an image file it never mounts.
func TestReadFilesKernelFallback(t *testing.T) {
	good := buildImage(t, kindRR, doLayout, "config-2")
	broken := buildImage(t, kindRR, doLayout, "config-2")
	corruptISORoots(t, broken)
	fat := buildImage(t, kindFAT12, doLayout, "CONFIG-2")
	fatBroken := filepath.Join(t.TempDir(), "fat-broken.img")
	b := readTestFile(t, fat)
	fatTableBreak(t, b)
	if err := os.WriteFile(fatBroken, b, 0o644); err != nil {
		t.Fatal(err)
	}

	oneFAT := buildImage(t, kindFAT12OneFAT, doLayout, "CONFIG-2")
	noOpenStack := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(noOpenStack, 0o755); err != nil {
		t.Fatal(err)
	}
	noOpenStackImg := buildImage(t, kindRR, noOpenStack, "config-2")

	tests := []struct {
		name      string
		img       string
		block     bool
		mnt       fakeMounter
		wantCalls []string
		wantErr   string
	}{
		{
			name:      "userspace reads it: no mount",
			img:       good,
			block:     true,
			mnt:       fakeMounter{tree: doLayout},
			wantCalls: nil,
		},
		{
			name:      "corrupt for go-diskfs, block device: kernel iso9660",
			img:       broken,
			block:     true,
			mnt:       fakeMounter{tree: doLayout},
			wantCalls: []string{"mount " + broken + " iso9660 ro,nosuid,nodev,noexec ", "unmount"},
		},
		{
			name:      "vfat block device: kernel vfat",
			img:       fatBroken,
			block:     true,
			mnt:       fakeMounter{tree: doLayout},
			wantCalls: []string{"mount " + fatBroken + " vfat ro,nosuid,nodev,noexec ", "unmount"},
		},
		{
			name:      "one FAT copy, block device: kernel vfat",
			img:       oneFAT,
			block:     true,
			mnt:       fakeMounter{tree: doLayout},
			wantCalls: []string{"mount " + oneFAT + " vfat ro,nosuid,nodev,noexec ", "unmount"},
		},
		{
			// The kernel is the reference: it is asked even when userspace
			// found no openstack/ (here it finds none either).
			name:      "no openstack/ on a block device: the kernel has a say",
			img:       noOpenStackImg,
			block:     true,
			mnt:       fakeMounter{tree: noOpenStack},
			wantCalls: []string{"mount " + noOpenStackImg + " iso9660 ro,nosuid,nodev,noexec ", "unmount"},
			wantErr:   "no openstack",
		},
		{
			name:    "image file: no kernel fallback",
			img:     broken,
			block:   false,
			mnt:     fakeMounter{tree: doLayout},
			wantErr: "corrupt filesystem",
		},
		{
			name:      "mount fails: both errors reported",
			img:       broken,
			block:     true,
			mnt:       fakeMounter{mountErr: unix.EACCES},
			wantCalls: []string{"mount " + broken + " iso9660 ro,nosuid,nodev,noexec "},
			wantErr:   "with the kernel: mount " + broken + " on ",
		},
		{
			name:      "no isofs in the kernel: the error says which module",
			img:       broken,
			block:     true,
			mnt:       fakeMounter{mountErr: unix.ENODEV},
			wantCalls: []string{"mount " + broken + " iso9660 ro,nosuid,nodev,noexec "},
			wantErr:   "(is the isofs module loaded?)",
		},
		{
			name:      "mounted but empty: still unmounted",
			img:       broken,
			block:     true,
			mnt:       fakeMounter{},
			wantCalls: []string{"mount " + broken + " iso9660 ro,nosuid,nodev,noexec ", "unmount"},
			wantErr:   "no openstack",
		},
		{
			name:      "unmount fails: error says where it stays mounted",
			img:       broken,
			block:     true,
			mnt:       fakeMounter{tree: doLayout, unmountErr: unix.EBUSY},
			wantCalls: []string{"mount " + broken + " iso9660 ro,nosuid,nodev,noexec ", "unmount"},
			wantErr:   "unmount",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runDir := filepath.Join(t.TempDir(), "run")
			d := driveReader{mnt: &tt.mnt, isBlock: func(string) (bool, error) { return tt.block, nil }}
			got, err := d.read(context.Background(), tt.img, ReadOptions{RunDir: runDir})
			if diff := cmp.Diff(tt.wantCalls, tt.mnt.calls); diff != "" {
				t.Errorf("mount calls (-want +got):\n%s", diff)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("read = %v, want an error containing %q", err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			want := wantFiles(t, doLayout, "latest", tt.img, got.FSType)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("read (-want +got):\n%s", diff)
			}
			// The private mount point is gone once it is unmounted.
			if entries, err := os.ReadDir(runDir); err == nil && len(entries) > 0 {
				t.Errorf("%s still holds %d entries", runDir, len(entries))
			}
		})
	}
}

// fatTableBreak marks every cluster as the end of its chain in both
// FATs: the boot sector and label still probe as vfat, but files longer
// than a cluster end early, which the userspace reader must refuse.
func fatTableBreak(t *testing.T, b []byte) {
	t.Helper()
	bpb, ok := parseFATBPB(b[:512])
	if !ok {
		t.Fatal("not a FAT image")
	}
	start := int(bpb.reserved * bpb.bytesPerSector)
	end := start + int(bpb.numFATs*bpb.fatSize*bpb.bytesPerSector)
	for i := start + 3; i < end; i++ { // keep the media descriptor entries
		b[i] = 0xFF
	}
}

func TestReadMountedRejectsUnknownType(t *testing.T) {
	m := &fakeMounter{}
	_, err := readMounted(context.Background(), m, "/dev/vdb", "ext4", ReadOptions{RunDir: t.TempDir()})
	if !errors.Is(err, ErrUnknownFS) || len(m.calls) != 0 {
		t.Errorf("readMounted(ext4) = %v after calls %q; want ErrUnknownFS and no mount", err, m.calls)
	}
}
