package agent

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Cmdline
	}{
		{
			name: "no notos parameters",
			in:   "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro console=ttyS0 quiet\n",
			want: Cmdline{},
		},
		{
			name: "every parameter",
			in:   "root=/dev/vda notos.modules=virtio_net,virtio_blk notos.iface=eth0,eth1 notos.net=dhcp notos.label=CONFIG-2 notos.timeout=45s notos.skip=keys,userdata notos.debug",
			want: Cmdline{
				Modules: []string{"virtio_net", "virtio_blk"},
				Ifaces:  []string{"eth0", "eth1"},
				Net:     "dhcp",
				Label:   "CONFIG-2",
				Timeout: 45 * time.Second,
				Skip:    []string{"keys", "userdata"},
				Debug:   true,
			},
		},
		{
			name: "timeout in plain seconds",
			in:   "notos.timeout=30",
			want: Cmdline{Timeout: 30 * time.Second},
		},
		{
			name: "quoted value keeps its space",
			in:   `notos.label="my drive" quiet`,
			want: Cmdline{Label: "my drive"},
		},
		{
			name: "whole word quoted",
			in:   `"notos.label=my drive" notos.net=off`,
			want: Cmdline{Label: "my drive", Net: "off"},
		},
		{
			name: "last one wins",
			in:   "notos.net=dhcp notos.net=static notos.modules=a notos.modules=b",
			want: Cmdline{Net: "static", Modules: []string{"b"}},
		},
		{
			name: "parameters after -- belong to init",
			in:   "notos.net=off -- notos.net=dhcp single",
			want: Cmdline{Net: "off"},
		},
		{
			name: "lists: empty entries, spaces, duplicates",
			in:   `notos.modules=,af_packet,,af_packet, "notos.iface= eth0 ,"`,
			want: Cmdline{Modules: []string{"af_packet"}, Ifaces: []string{"eth0"}},
		},
		{
			name: "empty list is given, not absent",
			in:   "notos.skip=",
			want: Cmdline{Skip: []string{}},
		},
		{
			name: "debug off",
			in:   "notos.debug notos.debug=0",
			want: Cmdline{},
		},
		{
			name: "garbage is ignored with warnings",
			in:   "notos.net=maybe notos.timeout=soon notos.timeout=-5 notos.timeout=48h notos.skip=keys,everything notos.iface=eth0/../x,averyveryverylongname notos.modules=af_packet;reboot notos.label= notos.debug=perhaps notos.bogus=1 notos. notosfoo=1",
			want: Cmdline{
				Skip:    []string{"keys"},
				Ifaces:  []string{},
				Modules: []string{},
				Warnings: []string{
					`notos.net="maybe" ignored: not one of auto, dhcp, static, off`,
					`notos.timeout="soon" ignored: not a duration or a number of seconds`,
					`notos.timeout="-5" ignored: out of range (0, 1h0m0s]`,
					`notos.timeout="48h" ignored: out of range (0, 1h0m0s]`,
					`notos.skip: "everything" ignored: not a valid name`,
					`notos.iface: "eth0/../x" ignored: not a valid name`,
					`notos.iface: "averyveryverylongname" ignored: not a valid name`,
					`notos.modules: "af_packet;reboot" ignored: not a valid name`,
					`notos.label="" ignored: a label is 1 to 32 printable characters`,
					`notos.debug="perhaps" ignored: expected no value, 1 or 0`,
					`notos.bogus: unknown parameter ignored`,
					`notos.: unknown parameter ignored`,
				},
			},
		},
		{
			name: "unterminated quote runs to the end",
			in:   `notos.net=off "notos.label=a b`,
			want: Cmdline{Net: "off", Label: "a b"},
		},
		{
			name: "tabs, NUL and CR are separators",
			in:   "notos.net=off\tnotos.debug\x00notos.label=x\r\n",
			want: Cmdline{Net: "off", Debug: true, Label: "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseCmdline(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseCmdline(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add(`notos.label="a b" notos.modules=x,y -- notos.net=off`)
	f.Add("notos.timeout=9999999999999999999s notos.debug=")
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseCmdline(s)
		if c.Timeout < 0 || c.Timeout > maxTimeout {
			t.Errorf("timeout %v out of range", c.Timeout)
		}
		for _, m := range c.Modules {
			if !validModuleName(m) {
				t.Errorf("invalid module %q accepted", m)
			}
		}
	})
}
