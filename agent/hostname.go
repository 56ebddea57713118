package agent

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/internal/atomicfile"
)

// MaxHostname is the kernel's limit on a host name (__NEW_UTS_LEN).
const MaxHostname = 64

// ErrBadHostname is wrapped by SanitizeHostname when nothing usable is left.
var ErrBadHostname = errors.New("no usable host name")

// SanitizeHostname turns a name from the metadata into a host name: each
// dot-separated label is made an RFC 1123 label (letters, digits and '-',
// not starting or ending with '-', at most 63 characters) by replacing every
// other character with '-'; empty labels and a trailing dot are dropped.
// When the result is longer than MaxHostname only its first label is kept.
// Nothing usable left is an error wrapping ErrBadHostname.
func SanitizeHostname(raw string) (string, error) {
	var labels []string
	for _, l := range strings.Split(strings.TrimSpace(raw), ".") {
		var b strings.Builder
		for _, c := range l {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
				b.WriteRune(c)
			} else {
				b.WriteByte('-')
			}
		}
		// RFC 1123 section 2.1 keeps RFC 952's rule: a label neither
		// starts nor ends with a hyphen; RFC 1035 section 2.3.4: 63 octets.
		label := strings.Trim(b.String(), "-")
		if len(label) > 63 {
			label = strings.TrimRight(label[:63], "-")
		}
		if label != "" {
			labels = append(labels, label)
		}
	}
	if len(labels) == 0 {
		return "", fmt.Errorf("host name %q: %w", raw, ErrBadHostname)
	}
	name := strings.Join(labels, ".")
	if len(name) > MaxHostname {
		name = labels[0]
	}
	return name, nil
}

// HostnameCandidate is one metadata field that may name the host.
type HostnameCandidate struct {
	Field string // "hostname", "digitalocean hostname" or "name"
	Value string
}

// HostnameCandidates lists the fields that name the host, best first:
// meta_data.json's hostname (Nova's own sanitized name; on DigitalOcean the
// droplet name; configdrive fills it from digitalocean_meta_data.json when
// meta_data.json has none), then digitalocean_meta_data.json's hostname,
// then meta_data.json's name, the free-form display name. Empty fields and
// repeats are left out.
func HostnameCandidates(md *configdrive.Metadata) []HostnameCandidate {
	var cs []HostnameCandidate
	add := func(field, v string) {
		if strings.TrimSpace(v) == "" {
			return
		}
		for _, c := range cs {
			if c.Value == v {
				return
			}
		}
		cs = append(cs, HostnameCandidate{field, v})
	}
	add("hostname", md.Hostname)
	if md.DigitalOcean != nil {
		add("digitalocean hostname", md.DigitalOcean.Hostname)
	}
	add("name", md.Name)
	return cs
}

// ChooseHostname returns the sanitized host name from the first candidate
// field that yields one, and the field it came from. It returns "" and no
// error when the metadata names no host at all, and an error naming the
// fields when all of them are unusable.
func ChooseHostname(md *configdrive.Metadata) (name, field string, err error) {
	var errs []error
	for _, c := range HostnameCandidates(md) {
		name, err := SanitizeHostname(c.Value)
		if err == nil {
			return name, c.Field, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.Field, err))
	}
	return "", "", errors.Join(errs...)
}

// KernelHostname gets and sets the running kernel's host name.
type KernelHostname interface {
	Hostname() (string, error)
	SetHostname(name string) error
}

// UTSHostname is the kernel host name of the calling process's UTS
// namespace.
type UTSHostname struct{}

// Hostname returns uname(2)'s nodename.
func (UTSHostname) Hostname() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return string(bytes.TrimRight(u.Nodename[:], "\x00")), nil
}

// SetHostname calls sethostname(2).
func (UTSHostname) SetHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("sethostname %q: %w", name, err)
	}
	return nil
}

// HostnameOptions says where the host name goes.
type HostnameOptions struct {
	Root string // the system's root directory; "" means "/"
	// Kernel sets the running kernel's host name; nil means UTSHostname.
	// It is used only when Root is "/": with another root the system is
	// an image mounted for offline work, not the one running.
	Kernel KernelHostname
}

// HostnameResult reports an InstallHostname call.
type HostnameResult struct {
	Name    string // "" when the metadata names no host
	Field   string // the metadata field Name came from
	Path    string // <Root>/etc/hostname
	Changed bool   // /etc/hostname or the kernel's name was changed
	Kernel  bool   // the kernel host name was (or already was) set to Name
}

// Summary is the result as a log line says it: "web-1 (unchanged)".
func (r HostnameResult) Summary() string {
	if r.Name == "" {
		return "none on the drive, left as is"
	}
	return fmt.Sprintf("%s (%s)", r.Name, changedWord(r.Changed))
}

// InstallHostname picks the host name from md (ChooseHostname), writes
// <Root>/etc/hostname atomically and, when Root is "/", sets the kernel's
// host name. Each is tried even when the other fails: a NixOS-style
// /etc/hostname that is a symbolic link into a read-only store is refused
// (atomicfile.ErrSymlink), yet the running system still gets its name.
// Metadata naming no host changes nothing.
func InstallHostname(md *configdrive.Metadata, o HostnameOptions) (HostnameResult, error) {
	root := o.Root
	if root == "" {
		root = "/"
	}
	kernel := o.Kernel
	if filepath.Clean(root) != "/" {
		kernel = nil // an image prepared offline: not the running kernel
	} else if kernel == nil {
		kernel = UTSHostname{}
	}
	return installHostname(md, root, kernel)
}

// installHostname writes root/etc/hostname and, when kernel is not nil,
// sets the kernel's host name.
func installHostname(md *configdrive.Metadata, root string, kernel KernelHostname) (HostnameResult, error) {
	res := HostnameResult{Path: filepath.Join(root, "etc/hostname")}
	name, field, err := ChooseHostname(md)
	if err != nil || name == "" {
		return res, err
	}
	res.Name, res.Field = name, field
	// UID/GID -1: owned by whoever runs us, root at boot.
	changed, fileErr := atomicfile.Write(res.Path, []byte(name+"\n"), atomicfile.Options{Perm: 0o644, UID: -1, GID: -1, DirPerm: 0o755})
	res.Changed = changed
	if kernel == nil {
		return res, fileErr
	}
	kchanged, kernelErr := setKernelHostname(kernel, name)
	res.Kernel = kernelErr == nil
	res.Changed = res.Changed || kchanged
	return res, errors.Join(kernelErr, fileErr)
}

// setKernelHostname sets the kernel's host name unless it is name already.
func setKernelHostname(k KernelHostname, name string) (changed bool, err error) {
	cur, err := k.Hostname()
	if err != nil {
		return false, err
	}
	if cur == name {
		return false, nil
	}
	if err := k.SetHostname(name); err != nil {
		return false, err
	}
	return true, nil
}
