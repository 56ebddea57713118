package agent

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Cmdline is what the kernel command line says to the agent (notos.*
// parameters). Nil lists and empty strings mean "not given".
type Cmdline struct {
	Modules []string      // notos.modules=a,b: added to af_packet and isofs
	Ifaces  []string      // notos.iface=eth0,eth1
	Net     string        // notos.net=auto|dhcp|static|off
	Label   string        // notos.label=config-2
	Timeout time.Duration // notos.timeout=30s or =30 (seconds)
	Skip    []string      // notos.skip=modules,keys,...
	Debug   bool          // notos.debug
	// Warnings name each notos.* parameter that was ignored, and why.
	Warnings []string
}

// StepNames are the steps of run, in order; --skip and notos.skip= take
// these names.
var StepNames = []string{"mounts", "cmdline", "modules", "drive", "links", "seed", "keys", "hostname", "net", "userdata"}

// NetModes are the values of --net and notos.net=.
var NetModes = []string{"auto", "dhcp", "static", "off"}

// maxTimeout bounds notos.timeout=: a typo must not hold a boot for days.
const maxTimeout = time.Hour

// ParseCmdline reads the notos.* parameters of a kernel command line
// (/proc/cmdline). It splits words the way the kernel does (lib/cmdline.c
// next_arg: double quotes group spaces, and are removed), stops at "--"
// (what follows is init's), and ignores everything that is not notos.*.
// A repeated parameter: the last one wins, as for the kernel's own. A bad
// value is ignored with a warning; it never makes the parse fail.
func ParseCmdline(s string) Cmdline {
	var c Cmdline
	warn := func(format string, args ...any) { c.Warnings = append(c.Warnings, fmt.Sprintf(format, args...)) }
	for _, word := range cmdlineWords(s) {
		if word == "--" {
			break
		}
		key, val, hasVal := strings.Cut(word, "=")
		if !strings.HasPrefix(key, "notos.") {
			continue
		}
		switch key {
		case "notos.modules":
			c.Modules = validList(key, val, validModuleName, warn)
		case "notos.iface":
			c.Ifaces = validList(key, val, validIfaceName, warn)
		case "notos.skip":
			c.Skip = validList(key, val, func(s string) bool { return slices.Contains(StepNames, s) }, warn)
		case "notos.net":
			if slices.Contains(NetModes, val) {
				c.Net = val
			} else {
				warn("%s=%q ignored: not one of %s", key, val, strings.Join(NetModes, ", "))
			}
		case "notos.label":
			if validLabel(val) {
				c.Label = val
			} else {
				warn("%s=%q ignored: a label is 1 to 32 printable characters", key, val)
			}
		case "notos.timeout":
			d, err := parseTimeout(val)
			if err != nil {
				warn("%s=%q ignored: %v", key, val, err)
			} else {
				c.Timeout = d
			}
		case "notos.debug":
			switch {
			case !hasVal || val == "1" || val == "true" || val == "yes":
				c.Debug = true
			case val == "0" || val == "false" || val == "no":
				c.Debug = false
			default:
				warn("%s=%q ignored: expected no value, 1 or 0", key, val)
			}
		default:
			warn("%s: unknown parameter ignored", key)
		}
	}
	return c
}

// cmdlineWords splits like the kernel's next_arg: spaces outside double
// quotes separate words; the quotes themselves are dropped, so both
// notos.label="a b" and "notos.label=a b" give notos.label=a b.
func cmdlineWords(s string) []string {
	var words []string
	var b strings.Builder
	inWord, inQuote := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == 0):
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}

// validList splits a comma-separated value, dropping empty and invalid
// entries (with a warning) and duplicates. It returns a non-nil slice:
// the parameter was given, even if empty.
func validList(key, val string, valid func(string) bool, warn func(string, ...any)) []string {
	out := []string{}
	for _, item := range strings.Split(val, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
		case !valid(item):
			warn("%s: %q ignored: not a valid name", key, item)
		case !slices.Contains(out, item):
			out = append(out, item)
		}
	}
	return out
}

// validModuleName accepts what can name a module or an alias in
// modules.alias (net-pf-17, fs-iso9660, virtio:d00000001v*): no spaces,
// no path separators, nothing a shell or a parameter list would split.
func validModuleName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '_' || r == '-' || r == ':' || r == '*' || r == '.'
		if !ok {
			return false
		}
	}
	return s != "" && s != "." && s != ".."
}

// validIfaceName follows the kernel's dev_valid_name: at most 15 bytes, no
// '/', ':' or white space, not "." or "..".
func validIfaceName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\r\x00")
}

// validLabel accepts an ISO9660 volume id (at most 32 characters) or a FAT
// label made of printable ASCII.
func validLabel(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return false
		}
	}
	return true
}

// parseTimeout accepts a Go duration ("45s", "1m30s") or whole seconds
// ("45"), more than zero and at most maxTimeout.
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.Atoi(s)
		if nerr != nil {
			return 0, fmt.Errorf("not a duration or a number of seconds")
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > maxTimeout {
		return 0, fmt.Errorf("out of range (0, %s]", maxTimeout)
	}
	return d, nil
}
