package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/kmod"
	"github.com/notos-agent/notos-agent/netcfg"
)

// This file holds the steps that call the project's other packages.

func (r *run) modules(ctx context.Context, rec *Record) error {
	if !r.system {
		rec.Skip(notSystem)
		return nil
	}
	names := r.config().Modules
	results := (&kmod.Loader{Dir: r.o.ModulesDir}).Load(ctx, names...)
	var failed, present []string
	for _, res := range results {
		switch {
		case res.Outcome == kmod.Failed:
			failed = append(failed, fmt.Sprintf("%s: %v", res.Module, res.Err))
		case !res.Dep:
			present = append(present, fmt.Sprintf("%s %s", res.Module, res.Outcome))
		}
		if res.Outcome == kmod.Loaded {
			rec.Changed("loaded %s", res.Module)
		}
	}
	rec.Summary("%s", strings.Join(present, ", "))
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

func (r *run) drive(ctx context.Context, rec *Record) error {
	cfg := r.config()
	md, err := configdrive.Load(ctx, configdrive.Options{
		Drive:   r.o.Drive,
		Label:   cfg.Label,
		Wait:    r.o.DriveWait,
		SysRoot: r.path("/sys"),
		DevRoot: r.path("/dev"),
		RunDir:  r.path("/run/notos-agent"),
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.md = md
	r.mu.Unlock()
	for _, w := range md.Warnings {
		rec.Warn("%s", w)
	}
	rec.Fact("source", md.Source)
	rec.Fact("instance_id", md.InstanceID)
	rec.Summary("%s on %s (%s, openstack/%s): instance %s, %s, user_data %s",
		cfg.Label, md.Source, md.FSType, md.Version, orNone(md.InstanceID), countKeys(len(md.PublicKeys)), md.UserData)
	return nil
}

// waitLinks waits, while the drive is being read, for the links known
// before the metadata (--iface, else every physical Ethernet link) to come
// up, for at most --drive-wait: the net step waits again for the links
// the metadata names. Links still down are warnings here, not a failure:
// whether they matter is the net step's to say.
func (r *run) waitLinks(ctx context.Context, rec *Record) error {
	cfg := r.config()
	if cfg.Net == "off" {
		rec.Skip("--net off")
		return nil
	}
	refs, err := netcfg.ChooseLinks(cfg.Ifaces, netcfg.Plan{}, r.path("/sys"))
	if err != nil {
		return err
	}
	h, err := routeHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	wait := r.o.DriveWait
	if wait <= 0 {
		wait = DefaultDriveWait
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	found, err := netcfg.WaitLinks(wctx, h, refs, netcfg.WaitOptions{NoCarrierOK: cfg.Net == "static"})
	var names []string
	for _, f := range found {
		names = append(names, f.Name)
	}
	r.mu.Lock()
	r.links = names
	r.mu.Unlock()
	if err != nil {
		rec.Warn("%v", err)
	}
	if len(refs) == 0 {
		rec.Summary("no link to wait for yet")
		return nil
	}
	rec.Summary("%d of %d links up: %s", len(names), len(refs), strings.Join(names, ", "))
	return nil
}

func (r *run) keys(ctx context.Context, rec *Record) error {
	md := r.metadata()
	if md == nil {
		rec.Skip("no metadata: the existing keys stay")
		return nil
	}
	res, err := InstallKeys(md, KeysOptions{Root: r.root, User: r.o.User})
	for _, w := range res.Warnings {
		rec.Warn("%s", w)
	}
	if err != nil {
		return err
	}
	rec.Fact("keys_file", res.Path)
	rec.Fact("keys", fmt.Sprint(res.Count))
	if res.Changed {
		rec.Changed("wrote %s", res.Path)
	}
	rec.Summary("%s", res.Summary())
	return nil
}

func (r *run) hostname(ctx context.Context, rec *Record) error {
	md := r.metadata()
	if md == nil {
		rec.Skip("no metadata: the host name stays")
		return nil
	}
	res, err := InstallHostname(md, HostnameOptions{Root: r.root})
	if err != nil {
		return err
	}
	if res.Name == "" {
		rec.Skip("%s", res.Summary())
		return nil
	}
	rec.Fact("hostname", res.Name)
	if res.Changed {
		rec.Changed("host name set to %s", res.Name)
	}
	how := res.Path
	if res.Kernel {
		how += " and the kernel"
	}
	rec.Summary("%s from %s, in %s", res.Summary(), res.Field, how)
	return nil
}
