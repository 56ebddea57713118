package agent

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/internal/atomicfile"
	"github.com/notos-agent/notos-agent/internal/netnstest"
	"github.com/notos-agent/notos-agent/internal/testenv"
)

func TestSanitizeHostname(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	for _, tt := range []struct {
		in, want string
		bad      bool
	}{
		{in: "web-1", want: "web-1"},
		{in: "Web-1", want: "Web-1"}, // case is kept: RFC 1123 names compare case-insensitively
		{in: "test_instance-kubevirt.foo.cloud", want: "test-instance-kubevirt.foo.cloud"},
		{in: "rh-lbruno-classic01.example.cloud.", want: "rh-lbruno-classic01.example.cloud"}, // FQDN with the root dot
		{in: "  my server  ", want: "my-server"},
		{in: "-lead.trail-", want: "lead.trail"},
		{in: "a..b", want: "a.b"},
		{in: "café.example", want: "caf.example"}, // é replaced, then the trailing '-' trimmed
		{in: "_srv_.x", want: "srv.x"},
		{in: long63 + "b", want: long63}, // label cut to 63
		{in: strings.Repeat("x", 31) + "." + strings.Repeat("y", 32), want: strings.Repeat("x", 31) + "." + strings.Repeat("y", 32)}, // exactly 64
		{in: strings.Repeat("x", 31) + "." + strings.Repeat("y", 33), want: strings.Repeat("x", 31)},                                 // 65: first label
		{in: "not-os-config-2.qcow2.s-1vcpu-1gb-ams3-01", want: "not-os-config-2.qcow2.s-1vcpu-1gb-ams3-01"},
		{in: "", bad: true},
		{in: "___", bad: true},
		{in: ".", bad: true},
	} {
		got, err := SanitizeHostname(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrBadHostname) {
				t.Errorf("SanitizeHostname(%q) = %q, %v; want ErrBadHostname", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("SanitizeHostname(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if len(got) > MaxHostname {
			t.Errorf("SanitizeHostname(%q) is %d long", tt.in, len(got))
		}
	}
}

// TestChooseHostnameFixtures: the host name each shared fixture gives.
func TestChooseHostnameFixtures(t *testing.T) {
	for _, tt := range []struct {
		fixture    string
		do         bool // a DigitalOcean metadata document, not meta_data.json
		name, from string
	}{
		{"afterburn/kubevirt-meta_data-underscore-hostname.json", false, "test-instance-kubevirt.foo.cloud", "hostname"},
		{"afterburn/ibmcloud-classic-vfat-meta_data.json", false, "rh-lbruno-classic01.example.cloud", "hostname"},
		{"afterburn/powervs-meta_data-keys-list-network_config.json", false, "test-tf-pvm.power-iaas.cloud.ibm.com", "hostname"},
		{"afterburn/openstack-meta_data-uuid-only.json", false, "", ""},
		{"not-os/digitalocean-configdrive-openstack-latest-meta_data.json", false, "not-os-config-2.qcow2.s-1vcpu-1gb-ams3-01", "hostname"},
		// configdrive takes the droplet's hostname when meta_data.json has none.
		{"talos/digitalocean-metadata-v1-droplet.json", true, "debian-s-1vcpu-512mb-10gb-ams3-01", "hostname"},
	} {
		data, err := os.ReadFile(filepath.Join("../../shared/fixtures", tt.fixture))
		if err != nil {
			t.Fatal(err)
		}
		files := configdrive.Files{MetaData: data}
		if tt.do {
			files = configdrive.Files{MetaData: []byte(`{"uuid": "x"}`), DigitalOcean: data}
		}
		md, err := configdrive.Parse(files)
		if err != nil {
			t.Fatalf("Parse(%s): %v", tt.fixture, err)
		}
		name, from, err := ChooseHostname(md)
		if err != nil || name != tt.name || from != tt.from {
			t.Errorf("%s: ChooseHostname = %q, %q, %v; want %q from %q", tt.fixture, name, from, err, tt.name, tt.from)
		}
	}
}

func TestChooseHostnameOrder(t *testing.T) {
	do := &configdrive.DigitalOcean{Hostname: "droplet-1"}
	for _, tt := range []struct {
		md         configdrive.Metadata
		name, from string
		err        string
	}{
		{md: configdrive.Metadata{Hostname: "a", Name: "b", DigitalOcean: do}, name: "a", from: "hostname"},
		{md: configdrive.Metadata{Name: "My Server", DigitalOcean: do}, name: "droplet-1", from: "digitalocean hostname"},
		{md: configdrive.Metadata{Name: "My Server"}, name: "My-Server", from: "name"},
		{md: configdrive.Metadata{Hostname: "___", Name: "ok"}, name: "ok", from: "name"},
		{md: configdrive.Metadata{Hostname: "___", Name: "..."},
			err: "hostname: host name \"___\": no usable host name\nname: host name \"...\": no usable host name"},
		{md: configdrive.Metadata{Hostname: "  "}},
	} {
		name, from, err := ChooseHostname(&tt.md)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if diff := cmp.Diff([]string{tt.name, tt.from, tt.err}, []string{name, from, gotErr}); diff != "" {
			t.Errorf("ChooseHostname(hostname %q, name %q) (-want +got):\n%s", tt.md.Hostname, tt.md.Name, diff)
		}
	}
}

// kernelSpy records the calls a KernelHostname gets.
type kernelSpy struct {
	name string
	sets []string
}

func (k *kernelSpy) Hostname() (string, error) { return k.name, nil }
func (k *kernelSpy) SetHostname(n string) error {
	k.sets = append(k.sets, n)
	k.name = n
	return nil
}

// TestInstallHostnameOtherRoot: with a root other than "/", only the file
// is written; the kernel is never asked.
func TestInstallHostnameOtherRoot(t *testing.T) {
	root := t.TempDir()
	spy := &kernelSpy{name: "builder"}
	md := &configdrive.Metadata{Hostname: "test_instance-kubevirt.foo.cloud"}
	for i, wantChanged := range []bool{true, false} {
		res, err := InstallHostname(md, HostnameOptions{Root: root, Kernel: spy})
		if err != nil {
			t.Fatal(err)
		}
		want := HostnameResult{Name: "test-instance-kubevirt.foo.cloud", Field: "hostname",
			Path: filepath.Join(root, "etc/hostname"), Changed: wantChanged}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("run %d (-want +got):\n%s", i+1, diff)
		}
	}
	if got := readFile(t, filepath.Join(root, "etc/hostname")); got != "test-instance-kubevirt.foo.cloud\n" {
		t.Errorf("etc/hostname = %q", got)
	}
	if len(spy.sets) != 0 {
		t.Errorf("kernel host name set to %q under --root %s", spy.sets, root)
	}
}

func TestInstallHostnameNoneLeavesFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/hostname"), "old\n", 0o644)
	res, err := InstallHostname(&configdrive.Metadata{UUID: "x"}, HostnameOptions{Root: root})
	if err != nil || res.Name != "" || res.Changed {
		t.Errorf("InstallHostname(no name) = %+v, %v", res, err)
	}
	if got := readFile(t, filepath.Join(root, "etc/hostname")); got != "old\n" {
		t.Errorf("etc/hostname = %q, want it untouched", got)
	}
	_, err = InstallHostname(&configdrive.Metadata{Hostname: "___"}, HostnameOptions{Root: root})
	if !errors.Is(err, ErrBadHostname) {
		t.Errorf("InstallHostname(___) = %v, want ErrBadHostname", err)
	}
	if got := readFile(t, filepath.Join(root, "etc/hostname")); got != "old\n" {
		t.Errorf("etc/hostname = %q after a bad name, want it untouched", got)
	}
}

// TestInstallHostnameSymlinkedFile: an /etc/hostname that is a link (as
// NixOS makes it, into a read-only store) is refused and its target left
// alone, but the kernel still gets the name.
func TestInstallHostnameSymlinkedFile(t *testing.T) {
	root, store := t.TempDir(), t.TempDir()
	target := filepath.Join(store, "hostname")
	writeFile(t, target, "nixos\n", 0o444)
	writeFile(t, filepath.Join(root, "etc/.keep"), "", 0o644)
	if err := os.Symlink(target, filepath.Join(root, "etc/hostname")); err != nil {
		t.Fatal(err)
	}
	spy := &kernelSpy{name: "nixos"}
	res, err := installHostname(&configdrive.Metadata{Hostname: "web-1"}, root, spy)
	if !errors.Is(err, atomicfile.ErrSymlink) {
		t.Errorf("installHostname = %v, want ErrSymlink", err)
	}
	if diff := cmp.Diff([]string{"web-1"}, spy.sets); diff != "" {
		t.Errorf("kernel host name calls (-want +got):\n%s", diff)
	}
	if !res.Kernel || !res.Changed {
		t.Errorf("result %+v, want the kernel set and changed", res)
	}
	if got := readFile(t, target); got != "nixos\n" {
		t.Errorf("link target = %q, want it untouched", got)
	}
}

// TestInstallHostnameKernel sets the real kernel host name with Root "/",
// in a UTS namespace of its own and with a private tmpfs on /etc, so that
// neither this machine's host name nor its /etc/hostname changes.
func TestInstallHostnameKernel(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if !inPrivateNamespaces(t, unix.CLONE_NEWUTS|unix.CLONE_NEWNS) {
		if after, _ := os.Hostname(); after != host {
			t.Errorf("this machine's host name changed from %q to %q", host, after)
		}
		return
	}
	mustMount(t, "tmpfs", "/etc", "tmpfs", 0, "size=1m")
	md := &configdrive.Metadata{Hostname: "test_instance-kubevirt.foo.cloud"}
	const want = "test-instance-kubevirt.foo.cloud"
	for i, wantChanged := range []bool{true, false} {
		res, err := InstallHostname(md, HostnameOptions{Root: "/"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Name != want || !res.Kernel || res.Changed != wantChanged {
			t.Errorf("run %d: %+v, want %s set in the kernel, changed=%t", i+1, res, want, wantChanged)
		}
		if got, _ := (UTSHostname{}).Hostname(); got != want {
			t.Errorf("run %d: kernel host name %q, want %q", i+1, got, want)
		}
		if got := readFile(t, "/etc/hostname"); got != want+"\n" {
			t.Errorf("run %d: /etc/hostname = %q", i+1, got)
		}
	}
	// Another root: the kernel keeps its name.
	if _, err := InstallHostname(&configdrive.Metadata{Hostname: "image"}, HostnameOptions{Root: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if got, _ := (UTSHostname{}).Hostname(); got != want {
		t.Errorf("kernel host name %q after an offline --root run, want %q", got, want)
	}
}

// childEnv names the test a re-executed test binary is to run inside its
// new namespaces.
const childEnv = "NOTOS_AGENT_TEST_NAMESPACES_CHILD"

// inPrivateNamespaces runs the calling test again in a child process with
// the given clone flags (unix.CLONE_NEWNS, CLONE_NEWUTS). It returns true
// in that child, which runs the test's body, and false in the parent,
// which has then checked that the child passed. A test thread cannot
// unshare reliably (the Go runtime has many threads), hence the re-exec.
func inPrivateNamespaces(t *testing.T, flags uintptr) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		enterChild(t, flags)
		return true
	}
	netnstest.Tier1(t)
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		// EPERM: root without CAP_SYS_ADMIN, as in some containers.
		testenv.Unavailable(t, "cannot create namespaces: %v", err)
	}
	if err := cmd.Wait(); err != nil || !bytes.Contains(out.Bytes(), []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s in new namespaces: %v\n%s", t.Name(), err, out.String())
	}
	return false
}

// enterChild checks that the child really is in namespaces of its own and
// makes its mounts private before the test mounts anything.
func enterChild(t *testing.T, flags uintptr) {
	for _, ns := range []struct {
		flag uintptr
		name string
	}{{unix.CLONE_NEWNS, "mnt"}, {unix.CLONE_NEWUTS, "uts"}} {
		if flags&ns.flag == 0 {
			continue
		}
		self, err1 := os.Readlink("/proc/self/ns/" + ns.name)
		parent, err2 := os.Readlink(filepath.Join("/proc", strconv.Itoa(os.Getppid()), "ns", ns.name))
		if err := errors.Join(err1, err2); err != nil || self == parent {
			t.Fatalf("not in a %s namespace of its own (%s, parent %s): %v", ns.name, self, parent, err)
		}
	}
	if flags&unix.CLONE_NEWNS != 0 {
		// A new mount namespace still shares mount events with its
		// parent when / is a shared mount (mount_namespaces(7)): make
		// everything private so that nothing mounted here reaches the
		// host.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Fatalf("make / private: %v", err)
		}
	}
}

// FuzzSanitizeHostname: whatever the metadata holds, the result is a valid
// host name of at most 64 characters, or ErrBadHostname; and sanitizing it
// again changes nothing.
func FuzzSanitizeHostname(f *testing.F) {
	for _, s := range []string{"web-1", "test_instance-kubevirt.foo.cloud", "a.", "-_-", "café", strings.Repeat("ab.", 30)} {
		f.Add(s)
	}
	valid := regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	f.Fuzz(func(t *testing.T, raw string) {
		name, err := SanitizeHostname(raw)
		if err != nil {
			if !errors.Is(err, ErrBadHostname) {
				t.Fatalf("SanitizeHostname(%q) = %v, not ErrBadHostname", raw, err)
			}
			return
		}
		if len(name) > MaxHostname || !valid.MatchString(name) {
			t.Fatalf("SanitizeHostname(%q) = %q: not a valid host name", raw, name)
		}
		if again, err := SanitizeHostname(name); err != nil || again != name {
			t.Fatalf("SanitizeHostname(%q) = %q, %v; want it unchanged", name, again, err)
		}
	})
}
