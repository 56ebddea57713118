package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/notos-agent/notos-agent/internal/atomicfile"
	"github.com/notos-agent/notos-agent/netcfg"
)

// StatePath is where run records what it did, under --root.
const StatePath = "/run/notos-agent/state.json"

// State is the content of state.json: what the last run did. It holds no
// secret (admin_pass and user_data never get here; a test plants
// sentinels to prove it).
type State struct {
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Deadline   time.Time `json:"deadline"`
	ExitCode   int       `json:"exit_code"`
	InstanceID string    `json:"instance_id,omitempty"`
	// Source is the drive read (a device or an image file).
	Source string `json:"source,omitempty"`
	// User is whose authorized_keys file the keys step manages.
	User  string       `json:"user"`
	Steps []StepResult `json:"steps"`
}

// writeState writes state.json under root, atomically.
func writeState(root string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	_, err = atomicfile.Write(filepath.Join(root, StatePath), append(b, '\n'),
		atomicfile.Options{Perm: 0o644, UID: -1, GID: -1, DirPerm: 0o755})
	return err
}

// Status is what `notos-agent status` shows: the last run, the leases
// saved for the stage-2 keeper, and the files in effect.
type Status struct {
	State *State `json:"state"`
	// StateError says why state.json could not be read, when it could not.
	StateError string          `json:"state_error,omitempty"`
	Leases     []*netcfg.Lease `json:"leases"`
	LeaseErrs  []string        `json:"lease_errors,omitempty"`
	// Hostname is /etc/hostname; KernelHostname the running kernel's,
	// read only when root is "/".
	Hostname       string `json:"hostname"`
	KernelHostname string `json:"kernel_hostname,omitempty"`
	KeysFile       string `json:"keys_file"`
	// Keys are the key types and comments of the keys file's lines (not
	// the keys themselves, which say nothing to a reader).
	Keys []string `json:"keys"`
}

// ReadStatus gathers the status under root. A missing state.json is
// reported in StateError; the rest is still read.
func ReadStatus(root string) *Status {
	st := &Status{Leases: []*netcfg.Lease{}, Keys: []string{}}
	b, err := os.ReadFile(filepath.Join(root, StatePath))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st.StateError = "no " + StatePath + ": run has not run since boot"
	case err != nil:
		st.StateError = err.Error()
	default:
		var s State
		if err := json.Unmarshal(b, &s); err != nil {
			st.StateError = fmt.Sprintf("parse %s: %v", StatePath, err)
		} else {
			st.State = &s
		}
	}

	// The saved leases, lease-<link>.json, in name order (os.ReadDir sorts;
	// filepath.Glob would link in its pattern matcher for this one use).
	entries, _ := os.ReadDir(filepath.Join(root, netcfg.LeaseDir))
	for _, e := range entries {
		iface, isLease := strings.CutPrefix(e.Name(), "lease-")
		iface, isJSON := strings.CutSuffix(iface, ".json")
		if !isLease || !isJSON {
			continue
		}
		l, err := netcfg.LoadLease(root, iface)
		if err != nil {
			st.LeaseErrs = append(st.LeaseErrs, err.Error())
			continue
		}
		st.Leases = append(st.Leases, l)
	}

	if b, err := os.ReadFile(filepath.Join(root, "etc/hostname")); err == nil {
		st.Hostname = strings.TrimSpace(string(b))
	}
	if root == "/" {
		st.KernelHostname, _ = os.Hostname()
	}
	user := "root"
	if st.State != nil && st.State.User != "" {
		user = st.State.User
	}
	st.KeysFile = filepath.Join("/etc/ssh/authorized_keys.d", user)
	if b, err := os.ReadFile(filepath.Join(root, st.KeysFile)); err == nil {
		st.Keys = keyLabels(b)
	}
	return st
}

// keyLabels turns authorized_keys lines into "type comment".
func keyLabels(b []byte) []string {
	labels := []string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		// Options ("from=... ssh-ed25519 AAAA comment") come first.
		for len(f) > 2 && !strings.HasPrefix(f[0], "ssh-") && !strings.HasPrefix(f[0], "ecdsa-") && !strings.HasPrefix(f[0], "sk-") {
			f = f[1:]
		}
		label := f[0]
		if len(f) > 2 {
			label += " " + strings.Join(f[2:], " ")
		}
		labels = append(labels, label)
	}
	return labels
}

// WriteText prints the status for a person at a shell, now being the
// time against which lease expiry is shown.
func (st *Status) WriteText(w io.Writer, now time.Time) {
	if s := st.State; s != nil {
		fmt.Fprintf(w, "last run: %s, exit %d, took %s (notos-agent %s)\n",
			s.Started.Local().Format(time.DateTime), s.ExitCode, roundDuration(s.Finished.Sub(s.Started)), s.Version)
		if s.InstanceID != "" || s.Source != "" {
			fmt.Fprintf(w, "instance: %s from %s\n", orNone(s.InstanceID), orNone(s.Source))
		}
		fmt.Fprintln(w, "steps:")
		for _, r := range s.Steps {
			fmt.Fprintf(w, "  %s\n", stepLine(r))
			for _, c := range r.Changes {
				fmt.Fprintf(w, "      changed: %s\n", c)
			}
			for _, wn := range r.Warnings {
				if !strings.HasPrefix(wn, "stack: ") {
					fmt.Fprintf(w, "      warning: %s\n", wn)
				}
			}
		}
	} else {
		fmt.Fprintf(w, "last run: unknown (%s)\n", st.StateError)
	}
	if len(st.Leases) == 0 {
		fmt.Fprintln(w, "leases: none saved")
	}
	slices.SortFunc(st.Leases, func(a, b *netcfg.Lease) int { return strings.Compare(a.Interface, b.Interface) })
	for _, l := range st.Leases {
		expires := l.Acquired.Add(l.Duration)
		left := expires.Sub(now).Round(time.Second)
		state := fmt.Sprintf("expires %s (in %s)", expires.Local().Format(time.DateTime), left)
		if left <= 0 {
			state = fmt.Sprintf("expired %s (%s ago)", expires.Local().Format(time.DateTime), -left)
		}
		fmt.Fprintf(w, "lease %s: %s from %s, %s\n", l.Interface, l.Address, l.Server, state)
	}
	for _, e := range st.LeaseErrs {
		fmt.Fprintf(w, "lease: %s\n", e)
	}
	host := orNone(st.Hostname)
	if st.KernelHostname != "" && st.KernelHostname != st.Hostname {
		host += fmt.Sprintf(" (kernel: %s)", st.KernelHostname)
	}
	fmt.Fprintf(w, "hostname: %s\n", host)
	fmt.Fprintf(w, "keys: %d in %s\n", len(st.Keys), st.KeysFile)
	for _, k := range st.Keys {
		fmt.Fprintf(w, "  %s\n", k)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
