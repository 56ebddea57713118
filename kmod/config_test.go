package kmod

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestModprobeConfig: modprobe.d options reach the kernel before those
// given with the name, softdeps replace modules.softdep's, and a
// blacklisted module is not reached through an alias but is by name.
func TestModprobeConfig(t *testing.T) {
	s := newFakeSystem(t)
	virtioTree(s)
	s.index("modules.softdep", "softdep isofs pre: virtio_blk\n")
	s.write("/etc/modprobe.d/local.conf", []byte("# mine\noptions isofs check=strict \\\n   map=normal\noptions cdrom debug=1\nsoftdep isofs pre: failover\n"))
	s.write("/lib/modprobe.d/local.conf", []byte("options isofs hidden=1\n"))
	s.write("/lib/modprobe.d/dist.conf", []byte("options isofs dist=1\nblacklist virtio_blk\ninstall isofs /bin/false\n"))
	results := s.loader().Load(context.Background(), "isofs map=off", "virtio:d00000002v1", "virtio_blk")
	want := []outcome{
		{"isofs", "failover", true, Loaded, "finit_module"},
		{"isofs", "cdrom", true, Loaded, "finit_module"},
		{"isofs", "isofs", false, Loaded, "finit_module"},
		{"virtio:d00000002v1", "virtio:d00000002v1", false, Failed, ""},
		{"virtio_blk", "virtio_ring", true, Loaded, "finit_module"},
		{"virtio_blk", "virtio", true, Loaded, "finit_module"},
		{"virtio_blk", "virtio_blk", false, Loaded, "finit_module"},
	}
	if diff := cmp.Diff(want, outcomes(results)); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	wantCalls := []call{
		{"finit_module", "failover", "", 0},
		{"finit_module", "cdrom", "debug=1", 0},
		{"finit_module", "isofs", "dist=1 check=strict map=normal map=off", 0},
		{"finit_module", "virtio_ring", "", 0},
		{"finit_module", "virtio", "", 0},
		{"finit_module", "virtio_blk", "", 0},
	}
	if diff := cmp.Diff(wantCalls, s.kernel.calls); diff != "" {
		t.Errorf("kernel calls (-want +got):\n%s", diff)
	}
}

func TestModprobeConfigMalformed(t *testing.T) {
	tests := []struct{ text, want string }{
		{"options\n", "/etc/modprobe.d/x.conf line 1: malformed line: want \"options MODULE PARAMS\""},
		{"# c\n\nblacklist a b\n", "/etc/modprobe.d/x.conf line 3: malformed line: want \"blacklist MODULE\""},
		{"options a \\\n b=1\nsoftdep\n", "/etc/modprobe.d/x.conf line 3: malformed line: want \"softdep MODULE"},
	}
	for _, tt := range tests {
		s := newFakeSystem(t)
		virtioTree(s)
		s.write("/etc/modprobe.d/x.conf", []byte(tt.text))
		r := s.loader().Load(context.Background(), "cdrom")[0]
		if r.Outcome != Failed || !errors.Is(r.Err, ErrMalformed) || !strings.Contains(r.Err.Error(), tt.want) {
			t.Errorf("config %q: got %v, want failed with %q", tt.text, r, tt.want)
		}
	}
}

// TestKernelCmdline: module options and modprobe.blacklist from
// /proc/cmdline, after modprobe.d's options and before those given with
// the name.
func TestKernelCmdline(t *testing.T) {
	s := newFakeSystem(t)
	virtioTree(s)
	s.write("/etc/modprobe.d/local.conf", []byte("options isofs check=strict\n"))
	s.write("/proc/cmdline", []byte(`BOOT_IMAGE=/boot/vmlinuz-6.1 root=UUID=x ro console=ttyS0,115200 isofs.check=r isofs.map="a b" cdrom.debug modprobe.blacklist=virtio_blk,nosuch rd.luks=0 quiet`+"\n"))
	results := s.loader().Load(context.Background(), "isofs block=1", "virtio:d00000002v1")
	want := []outcome{
		{"isofs", "cdrom", true, Loaded, "finit_module"},
		{"isofs", "isofs", false, Loaded, "finit_module"},
		{"virtio:d00000002v1", "virtio:d00000002v1", false, Failed, ""},
	}
	if diff := cmp.Diff(want, outcomes(results)); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	wantCalls := []call{
		{"finit_module", "cdrom", "debug", 0},
		{"finit_module", "isofs", `check=strict check=r map="a b" block=1`, 0},
	}
	if diff := cmp.Diff(wantCalls, s.kernel.calls); diff != "" {
		t.Errorf("kernel calls (-want +got):\n%s", diff)
	}
}

func TestCmdlineArgs(t *testing.T) {
	got := cmdlineArgs(" a b=\"c d\"\te.f=\"\" \n")
	want := []string{"a", `b="c d"`, `e.f=""`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cmdlineArgs (-want +got):\n%s", diff)
	}
}
