package configdrive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoDrive is returned by Find (wrapped) when no block device carries
// the label before the wait is over.
var ErrNoDrive = errors.New("no config-2 drive")

// DefaultLabel is the label OpenStack and DigitalOcean give the drive.
const DefaultLabel = "config-2"

// pollInterval: block devices appear as modules probe; a rescan costs a
// few reads per device, so polling is cheap enough for a 5 s window.
const pollInterval = 50 * time.Millisecond

// FindOptions says where and how long to look.
type FindOptions struct {
	Label   string        // matched without regard to case; DefaultLabel when empty
	Wait    time.Duration // keep looking this long; 0 scans once
	SysRoot string        // "/sys" when empty
	DevRoot string        // "/dev" when empty

	// afterScan, when set (tests), is called after each scan that found
	// nothing.
	afterScan func()
}

// Find returns the path of the block device whose filesystem label is
// o.Label, scanning SysRoot/class/block (whole disks, partitions and loop
// devices) and probing each superblock. Without udev in stage 1 the
// device node may be missing: it is created from the sysfs dev file. The
// scan repeats until o.Wait passes; then the error wraps ErrNoDrive.
func Find(ctx context.Context, o FindOptions) (string, error) {
	if o.Label == "" {
		o.Label = DefaultLabel
	}
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.DevRoot == "" {
		o.DevRoot = "/dev"
	}
	deadline := time.Now().Add(o.Wait)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	s := scanner{o: o, pending: map[string]chan probeOutcome{}}
	for {
		dev, scanned, err := s.scan()
		if err != nil || dev != "" {
			return dev, err
		}
		if o.afterScan != nil {
			o.afterScan()
		}
		if !time.Now().Before(deadline) {
			err := fmt.Errorf("%w: no filesystem labelled %q among %d block devices in %s after %v",
				ErrNoDrive, o.Label, scanned, filepath.Join(o.SysRoot, "class/block"), o.Wait)
			if len(s.problems) > 0 {
				// The console should say why a device present was not read.
				err = fmt.Errorf("%w; unreadable: %s", err, strings.Join(s.problems, "; "))
			}
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("find drive labelled %q: %w", o.Label, ctx.Err())
		case <-tick.C:
		}
	}
}

// probeTimeout bounds one device's probe in a scan. A disk retrying I/O
// errors, or a CD drive spinning up, can take many seconds; the scan goes
// on without it and collects its answer on the next pass.
const probeTimeout = 500 * time.Millisecond

var errProbeSlow = errors.New("probe still running")

type probeOutcome struct {
	p   probeResult
	err error
}

// scanner holds, across the scans of one Find, the probes that did not
// answer in time, so that a stuck device costs one goroutine, not one per
// scan.
type scanner struct {
	o       FindOptions
	pending map[string]chan probeOutcome
	// problems are the last scan's devices that could not be probed,
	// other than those holding no filesystem we know.
	problems []string
}

// scan probes every block device once and returns the first (by name)
// whose label matches.
func (s *scanner) scan() (dev string, scanned int, err error) {
	o := s.o
	classDir := filepath.Join(o.SysRoot, "class/block")
	entries, err := os.ReadDir(classDir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, nil // sysfs not populated yet: nothing to see
	}
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", classDir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	s.problems = s.problems[:0]
	for _, name := range names {
		sysDir := filepath.Join(classDir, name)
		if sectors, err := readSysInt(filepath.Join(sysDir, "size")); err != nil || sectors == 0 {
			continue // unattached loop device, empty CD tray, or going away
		}
		scanned++
		// sysfs writes '/' in device names as '!' (cciss!c0d0).
		path := filepath.Join(o.DevRoot, strings.ReplaceAll(name, "!", "/"))
		if err := ensureNode(path, sysDir); err != nil {
			// The device vanished since the listing, or /dev is read-only.
			s.problems = append(s.problems, err.Error())
			continue
		}
		p, err := s.probe(path)
		if err != nil {
			if !errors.Is(err, ErrUnknownFS) {
				s.problems = append(s.problems, err.Error()) // no medium, I/O error, slow
			}
			continue
		}
		if p.matches(o.Label) {
			return path, scanned, nil
		}
	}
	return "", scanned, nil
}

// probe probes path, or collects the answer of its earlier probe, waiting
// at most probeTimeout.
func (s *scanner) probe(path string) (probeResult, error) {
	ch, ok := s.pending[path]
	if !ok {
		ch = make(chan probeOutcome, 1)
		go func() {
			defer func() {
				if v := recover(); v != nil {
					ch <- probeOutcome{err: fmt.Errorf("probe %s: panic: %v", path, v)}
				}
			}()
			p, err := probePath(path)
			ch <- probeOutcome{p, err}
		}()
	}
	t := time.NewTimer(probeTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		delete(s.pending, path)
		return r.p, r.err
	case <-t.C:
		s.pending[path] = ch
		return probeResult{}, fmt.Errorf("probe %s: %w", path, errProbeSlow)
	}
}

func probePath(path string) (probeResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return probeResult{}, fmt.Errorf("probe %s: %w", path, err)
	}
	defer f.Close()
	p, err := probe(f)
	if err != nil {
		return probeResult{}, fmt.Errorf("probe %s: %w", path, err)
	}
	return p, nil
}

func readSysInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// ensureNode creates the block device node path from sysDir/dev
// ("major:minor") when it does not exist.
func ensureNode(path, sysDir string) error {
	if _, err := os.Lstat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b, err := os.ReadFile(filepath.Join(sysDir, "dev"))
	if err != nil {
		return err
	}
	maj, mnr, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok {
		return fmt.Errorf("parse %s/dev: %q is not major:minor", sysDir, b)
	}
	major, err1 := strconv.ParseUint(maj, 10, 32)
	minor, err2 := strconv.ParseUint(mnr, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("parse %s/dev: %w", sysDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	err = unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(major), uint32(minor))))
	// EEXIST: devtmpfs (or a concurrent udev) made it first; that node is
	// as good as ours.
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mknod %s: %w", path, err)
	}
	return nil
}
