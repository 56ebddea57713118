package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

const fullMountinfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
25 22 0:5 / /dev rw,nosuid,relatime shared:8 - devtmpfs udev rw,size=4015856k,nr_inodes=1003964,mode=755
26 22 0:24 / /run rw,nosuid,nodev,noexec,relatime shared:13 - tmpfs tmpfs rw,size=807128k,mode=755
27 22 0:25 / /mnt/with\040space rw - tmpfs none rw
`

func TestParseMountinfo(t *testing.T) {
	got, err := ParseMountinfo([]byte(fullMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Point: "/", FSType: "ext4", Source: "/dev/vda1"},
		{Point: "/proc", FSType: "proc", Source: "proc"},
		{Point: "/sys", FSType: "sysfs", Source: "sysfs"},
		{Point: "/dev", FSType: "devtmpfs", Source: "udev"},
		{Point: "/run", FSType: "tmpfs", Source: "tmpfs"},
		{Point: "/mnt/with space", FSType: "tmpfs", Source: "none"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseMountinfo mismatch (-want +got):\n%s", diff)
	}
}

func TestParseMountinfoMalformed(t *testing.T) {
	for _, in := range []string{
		"22 1 8:1 / / rw,relatime shared:1 ext4 /dev/vda1 rw", // no separator
		"22 1 8:1 / / rw -",          // separator too early, no type
		"22 1 8:1 / / rw shared:1 -", // no type after the separator
	} {
		if _, err := ParseMountinfo([]byte(in)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseMountinfo(%q) error = %v, want one naming line 1", in, err)
		}
	}
}

func TestMissingMounts(t *testing.T) {
	points := func(ms []APIMount) []string {
		var p []string
		for _, m := range ms {
			p = append(p, m.Point)
		}
		return p
	}
	tests := []struct {
		name      string
		mountinfo string
		root      string
		want      []string
	}{
		{"everything mounted", fullMountinfo, "/", nil},
		{"bare root", "22 1 8:1 / / rw - ext4 /dev/vda1 rw\n", "/", []string{"/proc", "/sys", "/dev", "/run"}},
		{
			name: "run missing only",
			mountinfo: `22 1 8:1 / / rw - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw - proc proc rw
24 22 0:22 / /sys rw - sysfs sysfs rw
25 22 0:5 / /dev rw - devtmpfs devtmpfs rw
`,
			root: "/",
			want: []string{"/run"},
		},
		{
			// A container's /dev is a tmpfs: something is there, so it
			// is left alone.
			name: "other filesystem types count as mounted",
			mountinfo: `23 22 0:21 / /proc rw - proc proc rw
24 22 0:22 / /sys rw - sysfs sysfs ro
25 22 0:5 / /dev rw - tmpfs tmpfs rw
26 22 0:5 / /run rw - ramfs ramfs rw
`,
			root: "/",
		},
		{
			name:      "a mount below /run is not /run",
			mountinfo: "23 22 0:21 / /run/user/0 rw - tmpfs tmpfs rw\n" + strings.Join(strings.Split(fullMountinfo, "\n")[:4], "\n") + "\n",
			root:      "/",
			want:      []string{"/run"},
		},
		{
			name:      "under a root",
			mountinfo: "23 22 0:21 / /tmp/r/proc rw - proc proc rw\n24 22 0:21 / /sys rw - sysfs sysfs rw\n",
			root:      "/tmp/r",
			want:      []string{"/sys", "/dev", "/run"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounted, err := ParseMountinfo([]byte(tt.mountinfo))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, points(MissingMounts(mounted, tt.root))); diff != "" {
				t.Errorf("MissingMounts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeMounter records mount calls; when it mounts proc it writes the
// mountinfo file, as the kernel would make it appear.
type fakeMounter struct {
	calls     []string
	mountinfo string // written when proc is mounted
	fail      map[string]error
}

func (f *fakeMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.calls = append(f.calls, strings.Join([]string{source, target, fstype, data}, " "))
	if err := f.fail[fstype]; err != nil {
		return err
	}
	if fstype == "proc" && f.mountinfo != "" {
		return os.WriteFile(filepath.Join(target, "mountinfo"), []byte(f.mountinfo), 0o644)
	}
	return nil
}

func TestEnsureMounts(t *testing.T) {
	root := t.TempDir()
	info := filepath.Join(root, "proc", "mountinfo")
	tests := []struct {
		name      string
		mountinfo string // "" leaves the file absent: /proc not mounted
		procMakes string
		fail      map[string]error
		wantDone  []string
		wantCalls []string
		wantErr   string
	}{
		{
			name:      "proc not mounted: mounted first, then the rest",
			procMakes: "1 0 0:1 / " + root + "/proc rw - proc proc rw\n",
			wantDone:  []string{"/proc", "/sys", "/dev", "/run"},
			wantCalls: []string{
				"proc " + root + "/proc proc ",
				"sysfs " + root + "/sys sysfs ",
				"devtmpfs " + root + "/dev devtmpfs mode=0755",
				"tmpfs " + root + "/run tmpfs mode=0755",
			},
		},
		{
			name:      "everything there: nothing mounted",
			mountinfo: strings.ReplaceAll(fullMountinfo, " /", " "+root+"/"),
		},
		{
			name:      "one failure does not stop the others",
			mountinfo: "23 22 0:21 / " + root + "/proc rw - proc proc rw\n",
			fail:      map[string]error{"sysfs": unix.EPERM},
			wantDone:  []string{"/dev", "/run"},
			wantCalls: []string{
				"sysfs " + root + "/sys sysfs ",
				"devtmpfs " + root + "/dev devtmpfs mode=0755",
				"tmpfs " + root + "/run tmpfs mode=0755",
			},
			wantErr: "mount sysfs on " + root + "/sys: operation not permitted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(filepath.Join(root, "proc"))
			if tt.mountinfo != "" {
				os.MkdirAll(filepath.Dir(info), 0o755)
				if err := os.WriteFile(info, []byte(tt.mountinfo), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := &fakeMounter{mountinfo: tt.procMakes, fail: tt.fail}
			done, err := ensureMounts(m, root, info)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Errorf("ensureMounts error = %v, want %q", err, tt.wantErr)
			}
			if tt.wantErr != "" && !errors.Is(err, unix.EPERM) {
				t.Errorf("error %v does not wrap EPERM", err)
			}
			if diff := cmp.Diff(tt.wantDone, done); diff != "" {
				t.Errorf("mounted mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCalls, m.calls); diff != "" {
				t.Errorf("mount calls mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// safeMounter mounts for real, except that devtmpfs becomes a tmpfs: the
// kernel has one devtmpfs, the machine's /dev, so a devtmpfs mounted under
// a test root IS /dev, and removing the test root would empty it.
type safeMounter struct{ asked []string }

func (m *safeMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	m.asked = append(m.asked, fstype+" "+data)
	if fstype == "devtmpfs" {
		source, fstype = "tmpfs", "tmpfs"
	}
	return SystemMounter{}.Mount(source, target, fstype, flags, data)
}

// mountRootEnv passes the test root from the parent test to its child in
// private namespaces. Only the parent removes it, after the child and its
// mount namespace are gone: nothing can be mounted under it then.
const mountRootEnv = "NOTOS_AGENT_TEST_MOUNT_ROOT"

// Tier 1 (root): the real mount calls, in a private mount namespace, under
// a temporary root: proc, sysfs and tmpfs (devtmpfs stands in as a tmpfs,
// see safeMounter) are mounted once, judged from the real
// /proc/self/mountinfo, and a second call mounts nothing.
func TestEnsureMountsForReal(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Setenv(mountRootEnv, t.TempDir())
	}
	if !inPrivateNamespaces(t, unix.CLONE_NEWNS) {
		return
	}
	root := os.Getenv(mountRootEnv)
	if root == "" {
		t.Fatal(mountRootEnv + " not set")
	}
	m := &safeMounter{}
	done, err := ensureMounts(m, root, "/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("ensureMounts: %v", err)
	}
	if diff := cmp.Diff([]string{"/proc", "/sys", "/dev", "/run"}, done); diff != "" {
		t.Errorf("mounted mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"proc ", "sysfs ", "devtmpfs mode=0755", "tmpfs mode=0755"}, m.asked); diff != "" {
		t.Errorf("mount calls mismatch (-want +got):\n%s", diff)
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mounted, err := ParseMountinfo(data)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, m := range mounted {
		types[m.Point] = m.FSType
	}
	want := map[string]string{"/proc": "proc", "/sys": "sysfs", "/dev": "tmpfs", "/run": "tmpfs"}
	for p, fstype := range want {
		if got := types[filepath.Join(root, p)]; got != fstype {
			t.Errorf("%s: mounted %q, want %q", p, got, fstype)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "proc/self/mountinfo")); err != nil {
		t.Errorf("the proc mounted under the root does not work: %v", err)
	}
	done, err = ensureMounts(m, root, "/proc/self/mountinfo")
	if err != nil || done != nil {
		t.Errorf("second ensureMounts mounted %v, %v; want nothing", done, err)
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte(fullMountinfo))
	f.Add([]byte("1 0 0:1 / /a\\040b\\ rw - x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mounts, err := ParseMountinfo(data)
		if err != nil {
			return
		}
		for _, m := range mounts {
			if m.FSType == "" || m.Point == "" {
				t.Errorf("mount %+v without a type or a mount point", m)
			}
		}
		MissingMounts(mounts, "/")
	})
}
