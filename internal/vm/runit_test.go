package vm

import (
	"context"
	"strings"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// TestBootRunit runs Debian's runit as PID 1 through its three stages, the
// shape of not-os's boot: stage 1 once, stage 2 supervising a service, and
// on ctrl-alt-del from the host stage 3 and a clean power-off.
func TestBootRunit(t *testing.T) {
	requireVM(t)
	testenv.RequireCommands(t, "runit", "runsvdir")
	k := FetchKernel(t)
	r := NewInitramfs(t)
	r.AddBusybox()
	r.AddRunit()
	r.Symlink("/init", "/sbin/runit")
	r.WriteFile("/lib/vmtest.sh", []byte(ShellHelpers), 0o644)
	script := func(body string) []byte {
		return []byte("#!/bin/sh\nPATH=/bin:/sbin:/usr/bin:/usr/sbin\n. /lib/vmtest.sh\n" + body)
	}
	r.WriteFile("/etc/runit/1", script(`
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
touch /run/runit.stopit
chmod 100 /run/runit.stopit
vmtest stage 1
`), 0o755)
	r.WriteFile("/etc/runit/2", script(`
vmtest stage 2
exec runsvdir -P /etc/service
`), 0o755)
	r.WriteFile("/etc/service/hello/run", script(`
vmtest service "up as pid $$ under $(cat /proc/$PPID/comm)"
exec sleep 3600
`), 0o755)
	r.WriteFile("/etc/runit/ctrlaltdel", script(`vmtest ctrlaltdel received`), 0o755)
	r.WriteFile("/etc/runit/3", script(`
sv force-stop /etc/service/*
sv exit /etc/service/*
vmtest stage 3
`), 0o755)

	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	v := Boot(ctx, t, Config{Kernel: k.Vmlinuz, Initramfs: r.Pack()})
	for _, want := range []struct{ key, value string }{
		{"stage", "1"}, {"stage", "2"},
	} {
		if got, err := v.WaitValue(ctx, want.key); err != nil {
			t.Fatal(err)
		} else if got != want.value {
			t.Fatalf("VMTEST %s=%s, want %s", want.key, got, want.value)
		}
	}
	if got, err := v.WaitValue(ctx, "service"); err != nil {
		t.Fatal(err)
	} else if !strings.HasSuffix(got, "under runsv") {
		t.Errorf("VMTEST service=%s, want a process under runsv", got)
	}
	if _, err := v.Monitor(ctx, "sendkey ctrl-alt-delete"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WaitValue(ctx, "ctrlaltdel"); err != nil {
		t.Fatal(err)
	}
	if got, err := v.WaitValue(ctx, "stage"); err != nil {
		t.Fatal(err)
	} else if got != "3" {
		t.Fatalf("VMTEST stage=%s after ctrl-alt-del, want 3", got)
	}
	if err := v.WaitExit(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot to stage 1: %.2fs", v.BootTime().Seconds())
}
