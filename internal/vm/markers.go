package vm

import (
	"strings"
)

// The guest reports results on the serial console in lines the host can
// pick out of kernel and program output:
//
//	VMTEST key=value            one value
//	VMTEST-BEGIN name           the start of a block of raw lines
//	...
//	VMTEST-END name             its end
//
// ShellHelpers defines the shell functions that print them; InitScript
// includes it, and a guest with another init can install it as a file and
// source it.
const (
	markerValue = "VMTEST "
	markerBegin = "VMTEST-BEGIN "
	markerEnd   = "VMTEST-END "
)

// ShellHelpers is POSIX shell (busybox sh) defining:
//
//	vmtest KEY VALUE      prints "VMTEST KEY=VALUE"
//	vmtest_run NAME CMD…  runs CMD, prints its output (stdout and stderr)
//	                      as block NAME, then "VMTEST NAME.exit=STATUS"
//	vmtest_ls NAME DIR    the entries of DIR, one a line, as block NAME
const ShellHelpers = `
vmtest() { echo "VMTEST $1=$2"; }
vmtest_run() {
	_vmtest_name=$1; shift
	"$@" >/tmp/.vmtest.out 2>&1
	_vmtest_rc=$?
	echo "VMTEST-BEGIN $_vmtest_name"
	cat /tmp/.vmtest.out
	# A last line without a newline must not swallow the END marker.
	[ -z "$(tail -c 1 /tmp/.vmtest.out)" ] || echo
	echo "VMTEST-END $_vmtest_name"
	echo "VMTEST $_vmtest_name.exit=$_vmtest_rc"
	rm -f /tmp/.vmtest.out
	return $_vmtest_rc
}
vmtest_ls() { vmtest_run "$1" ls -1 "$2"; }
`

// InitScript returns an /init for a busybox initramfs: it mounts /proc,
// /sys and devtmpfs on /dev, defines ShellHelpers, prints
// "VMTEST init=started", runs body, prints "VMTEST init=done" and powers
// the machine off (QEMU exits; with -no-reboot a reboot does too).
func InitScript(body string) string {
	return `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
` + ShellHelpers + `
vmtest init started
` + body + `
vmtest init done
poweroff -f
reboot -f
`
}

// Results are the markers found in console output.
type Results struct {
	Values map[string]string   // VMTEST key=value (the last one wins)
	Blocks map[string][]string // VMTEST-BEGIN name ... VMTEST-END name
}

// ParseMarkers collects every marker in console output. A block without
// its END line (the guest died inside it) is left out.
func ParseMarkers(console string) Results {
	res := Results{Values: map[string]string{}, Blocks: map[string][]string{}}
	var block string
	var lines []string
	inBlock := false
	for line := range strings.Lines(console) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case inBlock && line == markerEnd+block:
			res.Blocks[block] = lines
			inBlock, lines = false, nil
		case inBlock:
			lines = append(lines, line)
		case strings.HasPrefix(line, markerBegin):
			block, inBlock, lines = strings.TrimPrefix(line, markerBegin), true, []string{}
		case strings.HasPrefix(line, markerValue):
			if k, v, ok := strings.Cut(strings.TrimPrefix(line, markerValue), "="); ok {
				res.Values[k] = v
			}
		}
	}
	return res
}
