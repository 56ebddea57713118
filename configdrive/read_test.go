package configdrive

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestReadFilesImages reads the DigitalOcean layout from every kind of
// image clouds write, userspace only.
func TestReadFilesImages(t *testing.T) {
	for _, k := range imageKinds {
		t.Run(k.name, func(t *testing.T) {
			img := buildImage(t, k, doLayout, k.label)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fstype, label, err := Probe(f)
			if err != nil || fstype != k.fstype || label != k.label {
				t.Errorf("Probe = %q, %q, %v; want %q, %q", fstype, label, err, k.fstype, k.label)
			}
			// A real drive passes the checks that guard go-diskfs.
			if p, err := probe(f); err != nil {
				t.Errorf("probe: %v", err)
			} else if err := preflight(f, p); err != nil {
				t.Errorf("preflight: %v", err)
			}
			got, err := ReadFiles(context.Background(), img, ReadOptions{RunDir: t.TempDir()})
			if err != nil {
				t.Fatalf("ReadFiles: %v", err)
			}
			want := wantFiles(t, doLayout, "latest", img, k.fstype)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ReadFiles (-want +got):\n%s", diff)
			}
			if got.UserData == nil || len(got.UserData) != 0 {
				t.Errorf("UserData = %v, want present and empty", got.UserData)
			}
		})
	}
}

// TestLoadDOLayout: the whole chain on the seed's drive, as keys and show
// will see it.
func TestLoadDOLayout(t *testing.T) {
	img := buildImage(t, kindRR, doLayout, "config-2")
	md, err := Load(context.Background(), Options{Drive: img, RunDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	type summary struct {
		Source, FSType, Version, InstanceID, Hostname string
		Keys                                          []string
		Lines                                         []string
		Warnings                                      []string
		AdminPass, UserData                           string
		HasNetwork, HasDO                             bool
	}
	got := summary{
		Source: md.Source, FSType: md.FSType, Version: md.Version,
		InstanceID: md.InstanceID, Hostname: md.Hostname,
		Keys: keyNames(md), Warnings: md.Warnings,
		AdminPass: md.AdminPass.String(), UserData: md.UserData.String(),
		HasNetwork: md.Network != nil, HasDO: md.DigitalOcean != nil,
	}
	for _, k := range md.PublicKeys {
		got.Lines = append(got.Lines, k.Line)
	}
	// The DigitalOcean list repeats key "0": one copy. dotty_keys never.
	want := summary{
		Source: img, FSType: FSISO9660, Version: "latest",
		InstanceID: "129714139", Hostname: "not-os-config-2.qcow2.s-1vcpu-1gb-ams3-01",
		Keys:      []string{"0", "1"},
		Lines:     []string{testKeyEd, testKeyRSA},
		AdminPass: "present", UserData: "absent",
		HasNetwork: true, HasDO: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	if len(md.Network.Links) != 2 || md.DigitalOcean.DropletID != "129714139" {
		t.Errorf("Network links %d, droplet %q; want 2, 129714139", len(md.Network.Links), md.DigitalOcean.DropletID)
	}
}

// TestReadFilesVersionChoice: without openstack/latest the newest dated
// directory is read.
func TestReadFilesVersionChoice(t *testing.T) {
	tree := copyTree(t, doLayout)
	if err := os.RemoveAll(filepath.Join(tree, "openstack/latest")); err != nil {
		t.Fatal(err)
	}
	newest := filepath.Join(tree, "openstack/2015-10-16/meta_data.json")
	if err := os.WriteFile(newest, []byte(`{"uuid":"from-2015-10-16"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// Not a version: must not be picked although it sorts last.
	if err := os.Mkdir(filepath.Join(tree, "openstack/content"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, k := range []imageKind{kindRR, kindJoliet, kindXorrisoJoliet, kindFAT16} {
		t.Run(k.name, func(t *testing.T) {
			img := buildImage(t, k, tree, k.label)
			got, err := ReadFiles(context.Background(), img, ReadOptions{})
			if err != nil {
				t.Fatalf("ReadFiles: %v", err)
			}
			if diff := cmp.Diff(wantFiles(t, tree, "2015-10-16", img, k.fstype), got); diff != "" {
				t.Errorf("ReadFiles (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadFilesLatestSymlink: some drive builders make openstack/latest a
// symbolic link (Rock Ridge keeps it) to the newest dated directory;
// reading that directory is reading latest.
func TestReadFilesLatestSymlink(t *testing.T) {
	tree := copyTree(t, doLayout)
	latest := filepath.Join(tree, "openstack/latest")
	if err := os.RemoveAll(latest); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("2015-10-16", latest); err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, kindRR, tree, "config-2")
	got, err := ReadFiles(context.Background(), img, ReadOptions{})
	if err != nil {
		t.Fatalf("ReadFiles: %v", err)
	}
	if diff := cmp.Diff(wantFiles(t, tree, "2015-10-16", img, FSISO9660), got); diff != "" {
		t.Errorf("ReadFiles (-want +got):\n%s", diff)
	}
}

// corruptISORoots overwrites the root directory extents of the primary
// and Joliet trees with garbage.
func corruptISORoots(t *testing.T, img string) {
	t.Helper()
	b := readTestFile(t, img)
	for vd := isoVDStart; vd+isoSector <= len(b) && b[vd] != isoVDEnd; vd += isoSector {
		extent := int(binary.LittleEndian.Uint32(b[vd+156+2:]))
		for i := extent * isoSector; i < (extent+1)*isoSector && i < len(b); i++ {
			b[i] = byte(0xA5 ^ i)
		}
	}
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func truncateFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// TestReadFilesBadInput: each bad drive gives a clear error, never a
// panic, never half a result.
func TestReadFilesBadInput(t *testing.T) {
	iso := kindRR
	fat := kindFAT12
	tests := []struct {
		name    string
		kind    imageKind
		tree    func(t *testing.T, tree string)
		image   func(t *testing.T, img string)
		is      error
		wantErr []string
	}{
		{
			name:  "ISO truncated inside the volume descriptors",
			kind:  iso,
			image: func(t *testing.T, img string) { truncateFile(t, img, isoVDStart+100) },
			is:    ErrUnknownFS,
		},
		{
			name:    "ISO truncated after the descriptors",
			kind:    iso,
			image:   func(t *testing.T, img string) { truncateFile(t, img, isoVDStart+3*isoSector) },
			wantErr: []string{"iso9660"},
		},
		{
			name:    "ISO with garbage root directories",
			kind:    iso,
			image:   corruptISORoots,
			wantErr: []string{"iso9660"},
		},
		{
			name: "label but no openstack/",
			kind: iso,
			tree: func(t *testing.T, tree string) {
				if err := os.RemoveAll(filepath.Join(tree, "openstack")); err != nil {
					t.Fatal(err)
				}
			},
			is: ErrNoOpenStack,
		},
		{
			name: "openstack/ without a version",
			kind: fat,
			tree: func(t *testing.T, tree string) {
				for _, v := range []string{"latest", "2012-08-10", "2015-10-16"} {
					if err := os.RemoveAll(filepath.Join(tree, "openstack", v)); err != nil {
						t.Fatal(err)
					}
				}
			},
			is: ErrNoOpenStack,
		},
		{
			name: "no meta_data.json",
			kind: iso,
			tree: func(t *testing.T, tree string) {
				if err := os.Remove(filepath.Join(tree, "openstack/latest/meta_data.json")); err != nil {
					t.Fatal(err)
				}
			},
			is:      fs.ErrNotExist,
			wantErr: []string{"openstack/latest/meta_data.json"},
		},
		{
			name:    "FAT with one FAT copy (an image file: no kernel fallback)",
			kind:    kindFAT12OneFAT,
			is:      errors.ErrUnsupported,
			wantErr: []string{"2 FAT copies"},
		},
		{
			name:    "vendor_data.json over 1 MiB (ISO)",
			kind:    iso,
			tree:    bigVendorData,
			is:      ErrFileTooLarge,
			wantErr: []string{"vendor_data.json"},
		},
		{
			name:    "vendor_data.json over 1 MiB (FAT)",
			kind:    kindFAT16,
			tree:    bigVendorData,
			is:      ErrFileTooLarge,
			wantErr: []string{"vendor_data.json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := doLayout
			if tt.tree != nil {
				tree = copyTree(t, doLayout)
				tt.tree(t, tree)
			}
			img := buildImage(t, tt.kind, tree, tt.kind.label)
			if tt.image != nil {
				tt.image(t, img)
			}
			got, err := ReadFiles(context.Background(), img, ReadOptions{RunDir: t.TempDir()})
			if err == nil {
				t.Fatalf("ReadFiles = %+v, want an error", got)
			}
			t.Logf("error: %v", err)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			for _, s := range append(tt.wantErr, img) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
			if diff := cmp.Diff(Files{}, got); diff != "" {
				t.Errorf("ReadFiles returned part of a drive with its error:\n%s", diff)
			}
		})
	}
}

func bigVendorData(t *testing.T, tree string) {
	t.Helper()
	big := make([]byte, MaxFileSize+1)
	for i := range big {
		big[i] = 'x'
	}
	if err := os.WriteFile(filepath.Join(tree, "openstack/latest/vendor_data.json"), big, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	tree := copyTree(t, doLayout)
	if err := os.WriteFile(filepath.Join(tree, "openstack/latest/meta_data.json"), []byte(`{"uuid": "x", "public_keys": {`), 0o644); err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, kindRR, tree, "config-2")
	if md, err := Load(context.Background(), Options{Drive: img}); err == nil || !strings.Contains(err.Error(), "meta_data.json") || !strings.Contains(err.Error(), img) {
		t.Errorf("Load(malformed meta_data.json) = %v, %v; want an error naming the file and the drive", md, err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-drive")
	if md, err := Load(context.Background(), Options{Drive: missing}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing drive) = %v, %v; want ErrNotExist", md, err)
	}
}

// TestReadFilesBoundedByContext: a device that never answers (here a FIFO
// with no writer, whose open blocks) costs no more than the context allows.
func TestReadFilesBoundedByContext(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "stuck")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := ReadFiles(ctx, fifo, ReadOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), fifo) {
		t.Errorf("ReadFiles(stuck device) = %v, want DeadlineExceeded naming it", err)
	}
	// Release the abandoned reader: a writer that closes at once gives it EOF.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}

// TestReadFilesLargeDirectories: directories that span several sectors
// (ISO9660 records never cross a sector boundary: the rest of a sector is
// padding) or several clusters. The Joliet reader is also checked on its
// own, since go-diskfs reads the Rock Ridge images before it gets a turn.
func TestReadFilesLargeDirectories(t *testing.T) {
	tree := copyTree(t, doLayout)
	// FAT12/16 have a fixed root directory of 512 entries, and each of
	// these names takes 5: fewer in the root than in a subdirectory.
	for dir, n := range map[string]int{".": 40, "openstack/latest": 150} {
		for i := range n {
			name := filepath.Join(tree, dir, fmt.Sprintf("a-rather-long-file-name-to-fill-directory-sectors-%03d.json", i))
			if err := os.WriteFile(name, []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := func(img string, k imageKind) Files { return wantFiles(t, tree, "latest", img, k.fstype) }
	for _, k := range []imageKind{kindRR, kindJoliet, kindXorrisoJoliet, kindFAT16, kindFAT32} {
		t.Run(k.name, func(t *testing.T) {
			img := buildImage(t, k, tree, k.label)
			got, err := ReadFiles(context.Background(), img, ReadOptions{})
			if err != nil {
				t.Fatalf("ReadFiles: %v", err)
			}
			if diff := cmp.Diff(want(img, k), got); diff != "" {
				t.Errorf("ReadFiles (-want +got):\n%s", diff)
			}
			if k.fstype != FSISO9660 {
				return
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			j, err := newJolietFS(f)
			if err != nil {
				t.Fatalf("newJolietFS: %v", err)
			}
			got, err = readTree(j)
			if err != nil {
				t.Fatalf("readTree(joliet): %v", err)
			}
			got.Source, got.FSType = img, k.fstype
			if diff := cmp.Diff(want(img, k), got); diff != "" {
				t.Errorf("Joliet reader (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadFilesSymlinkedFile: a file the agent reads that is a symbolic
// link on the drive is refused, in userspace (Rock Ridge keeps the link)
// and through a kernel mount (os.DirFS would follow it anywhere).
func TestReadFilesSymlinkedFile(t *testing.T) {
	tree := copyTree(t, doLayout)
	meta := filepath.Join(tree, "openstack/latest/meta_data.json")
	if err := os.Remove(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../2015-10-16/meta_data.json", meta); err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, kindRockRidge, tree, "config-2")
	if _, err := ReadFiles(context.Background(), img, ReadOptions{}); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "meta_data.json") {
		t.Errorf("ReadFiles(symlinked meta_data.json) = %v, want ErrNotRegular naming the file", err)
	}

	mounted := copyTree(t, doLayout)
	do := filepath.Join(mounted, "digitalocean_meta_data.json")
	if err := os.Remove(do); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", do); err != nil {
		t.Fatal(err)
	}
	if _, err := readTree(os.DirFS(mounted)); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "digitalocean_meta_data.json") {
		t.Errorf("readTree(mount with a symlink out of the drive) = %v, want ErrNotRegular", err)
	}
}
