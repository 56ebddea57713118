package mkdrive

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

// testSpec is a DigitalOcean drive with two real keys, user data and meta.
func testSpec(t *testing.T) Spec {
	t.Helper()
	return Spec{
		UUID:         "129714139",
		Hostname:     "not-os-test",
		PublicKeys:   []string{sshKeygen(t, "ed25519", "alice@example"), sshKeygen(t, "rsa", "bob@example")},
		Meta:         map[string]string{"role": "web"},
		NetworkData:  []byte(qemuNetworkData),
		UserData:     []byte("#!/bin/sh\necho hello\n"),
		DigitalOcean: true,
	}
}

func testFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := Files(testSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// run runs a program and returns its stdout; a non-zero exit fails the test.
func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// wantListing is the directory tree files make: directory ("/", "/a/b/")
// to the sorted names in it.
func wantListing(files map[string][]byte) map[string][]string {
	seen := map[string]bool{}
	l := map[string][]string{}
	add := func(dir, name string) {
		if !seen[dir+name] {
			seen[dir+name] = true
			l[dir] = append(l[dir], name)
		}
	}
	for p := range files {
		for q := p; q != "."; q = path.Dir(q) {
			dir := "/"
			if d := path.Dir(q); d != "." {
				dir = "/" + d + "/"
			}
			add(dir, path.Base(q))
		}
	}
	for _, names := range l {
		sort.Strings(names)
	}
	return l
}

// isoListing parses `isoinfo -l` output into the same form.
func isoListing(out []byte) map[string][]string {
	l := map[string][]string{}
	var dir string
	for _, line := range strings.Split(string(out), "\n") {
		if d, ok := strings.CutPrefix(line, "Directory listing of "); ok {
			dir = d
			continue
		}
		i := strings.Index(line, "]  ")
		if i < 0 {
			continue
		}
		name := strings.TrimRight(line[i+3:], " ")
		if name != "." && name != ".." {
			l[dir] = append(l[dir], name)
		}
	}
	for _, names := range l {
		sort.Strings(names)
	}
	return l
}

func TestISOReadByIsoinfo(t *testing.T) {
	bins := testenv.RequireCommands(t, "isoinfo", "isovfy")
	isoinfo := bins["isoinfo"]
	files := testFiles(t)
	img := filepath.Join(t.TempDir(), "drive.iso")
	if err := Write(img, ISO, files); err != nil {
		t.Fatal(err)
	}
	// isovfy checks both trees' records; it exits 0 even when it
	// complains, so its report is read.
	if v := string(run(t, bins["isovfy"], img)); !strings.HasSuffix(v, "No errors found\n") || strings.Contains(v, "***") {
		t.Errorf("isovfy:\n%s", v)
	}

	d := string(run(t, isoinfo, "-d", "-i", img))
	for _, want := range []string{"\nVolume id: config-2\n", "\nJoliet with UCS level 3 found\n", "\nRock Ridge signatures version 1 found\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("isoinfo -d lacks %q:\n%s", strings.TrimSpace(want), d)
		}
	}
	// The descriptors' fixed fields, as genisoimage writes them.
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	pvd, svd := b[16*sectorSize:17*sectorSize], b[17*sectorSize:18*sectorSize]
	for _, f := range []struct {
		name      string
		got, want string
	}{
		{"primary volume id", string(pvd[40:72]), "config-2" + strings.Repeat(" ", 24)},
		{"primary system id", string(pvd[8:40]), strings.Repeat(" ", 32)},
		{"Joliet volume id", string(svd[40:72]), "\x00c\x00o\x00n\x00f\x00i\x00g\x00-\x002" + strings.Repeat("\x00 ", 8)},
		{"Joliet publisher", string(svd[318:446]), strings.Repeat("\x00 ", 64)},
		{"primary expiration", string(pvd[847:864]), "0000000000000000\x00"},
		{"Joliet expiration", string(svd[847:864]), "0000000000000000\x00"},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	m := regexp.MustCompile(`\nVolume size is: (\d+)\n`).FindStringSubmatch(d)
	if fi, err := os.Stat(img); err != nil || m == nil || m[1] == "" {
		t.Errorf("volume size: stat %v, isoinfo -d %q", err, m)
	} else if want := fi.Size() / sectorSize; m[1] != strconv.FormatInt(want, 10) || fi.Size()%sectorSize != 0 {
		t.Errorf("image is %d bytes, volume size %s sectors: want the file to hold the whole volume", fi.Size(), m[1])
	}

	want := wantListing(files)
	for _, ext := range []string{"-R", "-J"} {
		got := isoListing(run(t, isoinfo, ext, "-l", "-i", img))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("isoinfo %s -l (-want +got):\n%s", ext, diff)
		}
		for p, content := range files {
			if got := run(t, isoinfo, ext, "-x", "/"+p, "-i", img); !bytes.Equal(got, content) {
				t.Errorf("isoinfo %s -x /%s = %q, want %q", ext, p, got, content)
			}
		}
	}
}

func TestVFATReadByMtoolsAndFsck(t *testing.T) {
	bins := testenv.RequireCommands(t, "fsck.vfat", "mdir", "mtype")
	files := testFiles(t)
	img := filepath.Join(t.TempDir(), "drive.img")
	if err := Write(img, VFAT, files); err != nil {
		t.Fatal(err)
	}
	fsckClean(t, bins["fsck.vfat"], img)

	// mdir -b lists a directory's entries as full paths, a directory
	// with a trailing slash.
	for dir, names := range wantListing(files) {
		var want []string
		for _, n := range names {
			p := dir + n
			if _, isFile := files[strings.TrimPrefix(p, "/")]; !isFile {
				p += "/"
			}
			want = append(want, "::"+p)
		}
		got := strings.Fields(string(run(t, bins["mdir"], "-b", "-i", img, "::"+dir)))
		sort.Strings(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("mdir -b ::%s (-want +got):\n%s", dir, diff)
		}
	}
	for p, content := range files {
		if got := run(t, bins["mtype"], "-i", img, "::/"+p); !bytes.Equal(got, content) {
			t.Errorf("mtype ::/%s = %q, want %q", p, got, content)
		}
	}
}

// fsckClean runs fsck.vfat -n (check, change nothing) and wants exit 0 and
// nothing to report beyond its version and the summary line.
func fsckClean(t *testing.T, fsck, img string) {
	t.Helper()
	out, err := exec.Command(fsck, "-n", img).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != 2 || !regexp.MustCompile(`: \d+ files, \d+/\d+ clusters$`).MatchString(lines[1]) {
		t.Errorf("fsck.vfat -n %s: %v\n%s", img, err, out)
	}
}

func TestLabelsByBlkid(t *testing.T) {
	blkid := testenv.RequireCommands(t, "blkid")["blkid"]
	files := testFiles(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		format Format
		want   string // blkid's tags, as -o export prints them
	}{
		{ISO, "LABEL=config-2\nTYPE=iso9660\n"},
		// LABEL is the root directory's volume-label entry (blkid
		// prefers it), LABEL_FATBOOT the boot sector's.
		{VFAT, "LABEL_FATBOOT=CONFIG-2\nLABEL=CONFIG-2\nTYPE=vfat\n"},
	} {
		img := filepath.Join(dir, string(tc.format))
		if err := Write(img, tc.format, files); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, line := range strings.Split(string(run(t, blkid, "-p", "-o", "export", img)), "\n") {
			for _, tag := range []string{"LABEL=", "LABEL_FATBOOT=", "TYPE="} {
				if strings.HasPrefix(line, tag) {
					got = append(got, line)
				}
			}
		}
		if g := strings.Join(got, "\n") + "\n"; g != tc.want {
			t.Errorf("blkid -p %s: got\n%swant\n%s", tc.format, g, tc.want)
		}
	}
}

// TestFixJolietMendsGoDiskfs shows why fixJoliet exists: go-diskfs's own
// output lists the wrong subdirectories under isoinfo -J, the mended image
// lists the right ones.
func TestFixJolietMendsGoDiskfs(t *testing.T) {
	isoinfo := testenv.RequireCommands(t, "isoinfo")["isoinfo"]
	files := testFiles(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "raw.iso"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := finalizeISO(f, files); err != nil {
		t.Fatal(err)
	}
	want := wantListing(files)
	if got := isoListing(run(t, isoinfo, "-J", "-l", "-i", f.Name())); cmp.Equal(want, got) {
		t.Log("go-diskfs now writes a correct Joliet tree: fixJoliet may no longer be needed")
	}
	if err := fixJoliet(f); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, isoListing(run(t, isoinfo, "-J", "-l", "-i", f.Name()))); diff != "" {
		t.Errorf("isoinfo -J -l after fixJoliet (-want +got):\n%s", diff)
	}
}

// TestISOPostPassesKeepGoodImages: on ISOs made by genisoimage and xorriso,
// the way OpenStack makes them, fixJoliet, roundDirSizes and
// tidyDescriptors change no byte.
func TestISOPostPassesKeepGoodImages(t *testing.T) {
	bins := testenv.RequireCommands(t, "genisoimage", "xorriso")
	files := testFiles(t)
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	for p, b := range files {
		if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, cmd := range map[string][]string{
		"genisoimage": {bins["genisoimage"], "-quiet", "-J", "-r", "-V", "config-2", "-o", filepath.Join(tmp, "genisoimage.iso"), tree},
		"xorriso":     {bins["xorriso"], "-as", "mkisofs", "-quiet", "-J", "-r", "-V", "config-2", "-o", filepath.Join(tmp, "xorriso.iso"), tree},
	} {
		t.Run(name, func(t *testing.T) {
			run(t, cmd[0], cmd[1:]...)
			img := filepath.Join(tmp, name+".iso")
			before, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := fixJoliet(f); err != nil {
				t.Fatal(err)
			}
			if err := roundDirSizes(f); err != nil {
				t.Fatal(err)
			}
			if err := tidyDescriptors(f); err != nil {
				t.Fatal(err)
			}
			after, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("post-passes changed %d bytes of a correct image", countDiff(before, after))
			}
		})
	}
}

// TestWriteISORefusesClobberedJoliet: when the last file laid out is empty,
// go-diskfs zeroes the Joliet root (see finalizeISO); Write must fail, not
// hand out a drive whose Joliet tree is empty.
func TestWriteISORefusesClobberedJoliet(t *testing.T) {
	out := filepath.Join(t.TempDir(), "drive.iso")
	err := Write(out, ISO, map[string][]byte{"a": []byte("x"), "z": {}})
	if err == nil || !strings.Contains(err.Error(), "first record is not '.'") {
		t.Errorf("Write: %v, want the Joliet root refused", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after a failed Write: %v, want no file", out, err)
	}
}

func TestFixJolietRefusesNonJoliet(t *testing.T) {
	genisoimage := testenv.RequireCommands(t, "genisoimage")["genisoimage"]
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(tmp, "rr.iso")
	run(t, genisoimage, "-quiet", "-r", "-o", img, filepath.Join(tmp, "f"))
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := fixJoliet(f); err == nil || err.Error() != "fix Joliet tree: no Joliet volume descriptor" {
		t.Errorf("fixJoliet on a Rock Ridge-only image: %v", err)
	}
}

// TestFixFAT32MendsGoDiskfs shows why fixFAT32 exists: fsck.vfat finds
// errors in go-diskfs's own output and none after fixFAT32.
func TestFixFAT32MendsGoDiskfs(t *testing.T) {
	fsck := testenv.RequireCommands(t, "fsck.vfat")["fsck.vfat"]
	f, err := os.Create(filepath.Join(t.TempDir(), "raw.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := createFAT32(f, testFiles(t)); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(fsck, "-n", f.Name()).Run(); err == nil {
		t.Log("go-diskfs now writes a clean FAT32: fixFAT32 may no longer be needed")
	}
	if err := fixFAT32(f); err != nil {
		t.Fatal(err)
	}
	fsckClean(t, fsck, f.Name())
}

// TestFixFAT32KeepsMkfsImages: on a volume made by mkfs.vfat -F 32 and
// filled by mcopy, fixFAT32 finds nothing to mend and fsck stays clean.
func TestFixFAT32KeepsMkfsImages(t *testing.T) {
	bins := testenv.RequireCommands(t, "mkfs.vfat", "mcopy", "mmd", "fsck.vfat")
	tmp := t.TempDir()
	img := filepath.Join(tmp, "mkfs.img")
	run(t, bins["mkfs.vfat"], "-F", "32", "-n", "CONFIG-2", "-C", img, "34000")
	run(t, bins["mmd"], "-i", img, "::/openstack", "::/openstack/latest")
	for name, content := range map[string]string{"meta_data.json": "{}", "user_data": ""} {
		src := filepath.Join(tmp, name)
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, bins["mcopy"], "-i", img, src, "::/openstack/latest/"+name)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := fixFAT32(f); err != nil {
		t.Fatal(err)
	}
	fsckClean(t, bins["fsck.vfat"], img)
	after, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if n := countDiff(before, after); n > 8 {
		t.Errorf("fixFAT32 changed %d bytes of a clean image; at most the FSInfo counts (8 bytes) may change", n)
	}
}

func TestFixFAT32RefusesFAT16(t *testing.T) {
	mkfs := testenv.RequireCommands(t, "mkfs.vfat")["mkfs.vfat"]
	img := filepath.Join(t.TempDir(), "fat16.img")
	run(t, mkfs, "-F", "16", "-n", "CONFIG-2", "-C", img, "32768")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := fixFAT32(f); err == nil || err.Error() != "read boot sector: not a FAT32 boot sector" {
		t.Errorf("fixFAT32 on FAT16: %v", err)
	}
}

func countDiff(a, b []byte) int {
	n := 0
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			n++
		}
	}
	return n
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "drive.iso")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file and a directory of the same name: go-diskfs fails midway.
	bad := map[string][]byte{"openstack": []byte("x"), "openstack/latest/meta_data.json": []byte("{}")}
	for _, format := range []Format{ISO, VFAT} {
		if err := Write(out, format, bad); err == nil {
			t.Errorf("Write %s with a file/directory clash: no error", format)
		}
	}
	if err := Write(out, "ext4", nil); err == nil || !strings.Contains(err.Error(), `unknown format "ext4"`) {
		t.Errorf("Write ext4: %v", err)
	}
	assertDir(t, dir, out, "old")

	if err := Write(out, ISO, map[string][]byte{"openstack/latest/meta_data.json": []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || len(b) < 17*sectorSize || string(b[vdFirstSector*sectorSize+1:][:5]) != "CD001" {
		t.Errorf("after Write: %d bytes, %v: not an ISO", len(b), err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode: %v %v, want 0644", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Write, want only the image", len(entries))
	}
	if err := Write(filepath.Join(dir, "missing", "x.iso"), ISO, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Write into a missing directory: %v, want ErrNotExist", err)
	}
}

func TestWriteRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"openstack/latest/meta_data.json": []byte("{}")}
	for _, p := range []string{fifo, dir} {
		err := Write(p, ISO, files)
		if err == nil || !strings.HasPrefix(err.Error(), "write "+p+": not a regular file") {
			t.Errorf("Write %s: %v, want a refusal", p, err)
		}
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("the FIFO was replaced: %v %v", fi.Mode(), err)
	}
}

// assertDir wants dir to hold only file, with content.
func assertDir(t *testing.T, dir, file, content string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(file) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only %s", names, filepath.Base(file))
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != content {
		t.Errorf("%s = %q, %v; want %q untouched", file, b, err, content)
	}
}

// TestFileSizesAtSectorEdges: go-diskfs pads a file's last ISO sector with
// a sector of zeros (see finalizeISO), FAT chains grow by cluster; files of
// 0, 1 and 2 sectors and around them come back whole from both formats.
func TestFileSizesAtSectorEdges(t *testing.T) {
	bins := testenv.RequireCommands(t, "isoinfo", "mtype", "fsck.vfat")
	dir := t.TempDir()
	for _, size := range []int{0, 1, 511, 512, 2047, 2048, 2049, 4096, MaxFileSize} {
		user := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		files, err := Files(Spec{UUID: "u", UserData: user})
		if err != nil {
			t.Fatal(err)
		}
		iso, img := filepath.Join(dir, "drive.iso"), filepath.Join(dir, "drive.img")
		if err := Write(iso, ISO, files); err != nil {
			t.Fatalf("user_data of %d bytes: %v", size, err)
		}
		if err := Write(img, VFAT, files); err != nil {
			t.Fatalf("user_data of %d bytes: %v", size, err)
		}
		fsckClean(t, bins["fsck.vfat"], img)
		for p, content := range files {
			for _, got := range [][]byte{
				run(t, bins["isoinfo"], "-R", "-x", "/"+p, "-i", iso),
				run(t, bins["isoinfo"], "-J", "-x", "/"+p, "-i", iso),
				run(t, bins["mtype"], "-i", img, "::/"+p),
			} {
				if !bytes.Equal(got, content) {
					t.Errorf("user_data of %d bytes: /%s read back as %d bytes, want %d", size, p, len(got), len(content))
				}
			}
		}
	}
}
