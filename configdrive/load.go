package configdrive

import (
	"context"
	"fmt"
	"time"
)

// Options for Load. Zero values take the defaults: Label "config-2",
// SysRoot "/sys", DevRoot "/dev", RunDir "/run/notos-agent".
type Options struct {
	Drive   string // a device or image file to read; skips the scan
	Label   string
	Wait    time.Duration // how long Find waits for the drive to appear
	SysRoot string
	DevRoot string
	RunDir  string
}

// Load finds the drive (unless o.Drive names it), reads it and parses it.
func Load(ctx context.Context, o Options) (*Metadata, error) {
	drive := o.Drive
	if drive == "" {
		var err error
		drive, err = Find(ctx, FindOptions{Label: o.Label, Wait: o.Wait, SysRoot: o.SysRoot, DevRoot: o.DevRoot})
		if err != nil {
			return nil, err
		}
	}
	files, err := ReadFiles(ctx, drive, ReadOptions{RunDir: o.RunDir})
	if err != nil {
		return nil, err
	}
	md, err := Parse(files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", drive, err)
	}
	return md, nil
}
