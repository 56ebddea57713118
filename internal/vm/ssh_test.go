package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// TestBootSSH proves what the end-to-end tests stand on: the host's
// dynamically linked sshd runs in the initramfs with the libraries
// AddHostBinary copied, and the host's ssh logs in through a forwarded
// port with a key from /etc/ssh/authorized_keys.d/root.
func TestBootSSH(t *testing.T) {
	requireVM(t)
	tools := testenv.RequireCommands(t, "sshd", "ssh", "ssh-keygen")
	k := FetchKernel(t)
	keys := t.TempDir()
	for _, name := range []string{"host", "client"} {
		out, err := exec.Command(tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", filepath.Join(keys, name)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen %s: %v\n%s", name, err, out)
		}
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(keys, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	r := NewInitramfs(t)
	r.AddBusybox()
	r.AddModules(k, Uncompressed, "virtio_pci", "virtio_net")
	r.AddHostBinary("/usr/sbin/sshd", tools["sshd"])
	r.WriteFile("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nsshd:x:103:65534::/run/sshd:/bin/false\n"), 0o644)
	r.WriteFile("/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	r.WriteFile("/etc/ssh/ssh_host_ed25519_key", read("host"), 0o600)
	r.WriteFile("/etc/ssh/authorized_keys.d/root", read("client.pub"), 0o600)
	r.WriteFile("/etc/ssh/sshd_config", []byte(SSHDConfig), 0o644)
	r.AddInit(InitScript(`
modprobe -a virtio_pci virtio_net || vmtest modprobe.failed 1
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /run/sshd
chmod 0700 /root
/usr/sbin/sshd -D -e &
until netstat -ltn | grep -q ':22 '; do usleep 10000; done
vmtest sshd listening
wait
`))
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	v := Boot(ctx, t, Config{
		Kernel:    k.Vmlinuz,
		Initramfs: r.Pack(),
		Net:       &Net{ForwardTCP: []int{22}},
	})
	if _, err := v.WaitValue(ctx, "sshd"); err != nil {
		t.Fatal(err)
	}
	out, err := SSHCommand(ctx, v.HostPort(22), filepath.Join(keys, "client"), "uname -r; id -u").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh root@127.0.0.1 -p %d: %v\n%s", v.HostPort(22), err, out)
	}
	if got, want := strings.Fields(string(out)), []string{k.Release, "0"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ssh 'uname -r; id -u' = %q, want %q", got, want)
	}
	t.Logf("boot to first marker %.2fs", v.BootTime().Seconds())
	if _, err := v.Monitor(ctx, "quit"); err != nil {
		t.Error(err)
	}
	if err := v.WaitExit(ctx); err != nil {
		t.Error(err)
	}
}
