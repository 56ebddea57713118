package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/notos-agent/notos-agent/configdrive"
	"github.com/notos-agent/notos-agent/mkdrive"
)

// listFlag is a flag that may be given many times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func cmdMkdrive(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("mkdrive", "-o FILE [--format iso|vfat] [--key FILE]... [--hostname NAME] [--uuid ID]\n"+
		"       [--network-data FILE] [--user-data FILE] [--meta KEY=VALUE]... [--zone NAME] [--digitalocean]",
		"Write a config-2 drive image, as OpenStack and DigitalOcean attach to a machine,\n"+
			"to test an image locally (what cloud-localds is to cloud-init). iso is ISO9660\n"+
			"with Rock Ridge and Joliet labelled config-2; vfat is FAT32 labelled CONFIG-2.\n"+
			"The three openstack/ versions hold the same files.", stderr)
	out := fs.String("o", "", "image `FILE` to write (replaced atomically)")
	format := fs.String("format", "iso", "image `FORMAT`: iso or vfat")
	var keyFiles, metas listFlag
	fs.Var(&keyFiles, "key", "authorized_keys-format `FILE` of public keys (repeatable)")
	hostname := fs.String("hostname", "", "hostname (and name) `NAME` in the metadata")
	uuid := fs.String("uuid", "", "instance uuid `ID` (default: a random UUID; with --digitalocean, a random droplet id)")
	networkData := fs.String("network-data", "", "network_data.json `FILE` to copy (default: no links, no networks)")
	userData := fs.String("user-data", "", "user_data `FILE` to copy (default: empty)")
	fs.Var(&metas, "meta", "`KEY=VALUE` for meta_data.json's meta (repeatable)")
	zone := fs.String("zone", "", "availability_zone and DigitalOcean region `NAME` (default: nova, or local with --digitalocean)")
	digitalOcean := fs.Bool("digitalocean", false, "write DigitalOcean's layout: digitalocean_meta_data.json, a numeric uuid")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "notos-agent mkdrive: "+format+"\n", a...)
		fs.Usage()
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case *out == "":
		return usageErr("-o FILE is required")
	case *format != string(mkdrive.ISO) && *format != string(mkdrive.VFAT):
		return usageErr("--format %q: want iso or vfat", *format)
	}
	s := mkdrive.Spec{
		UUID:             *uuid,
		Hostname:         *hostname,
		AvailabilityZone: *zone,
		DigitalOcean:     *digitalOcean,
	}
	for _, m := range metas {
		k, v, ok := strings.Cut(m, "=")
		if !ok || k == "" {
			return usageErr("--meta %q: want KEY=VALUE", m)
		}
		if _, dup := s.Meta[k]; dup {
			return usageErr("--meta %q: key %q given twice", m, k)
		}
		if s.Meta == nil {
			s.Meta = map[string]string{}
		}
		s.Meta[k] = v
	}
	s, err := mkdrive.Make(mkdrive.Request{
		Output:          *out,
		Format:          mkdrive.Format(*format),
		KeyFiles:        keyFiles,
		NetworkDataFile: *networkData,
		UserDataFile:    *userData,
		Spec:            s,
	})
	if err != nil {
		return fail(stderr, "mkdrive", err)
	}
	label := mkdrive.ISOLabel
	if *format == string(mkdrive.VFAT) {
		label = mkdrive.VFATLabel
	}
	// user_data may hold secrets: only whether it is there is printed.
	fmt.Fprintf(stdout, "mkdrive: wrote %s (%s, label %s): uuid %s, hostname %q, keys %d, user_data %s, digitalocean %t\n",
		*out, *format, label, s.UUID, s.Hostname, len(s.PublicKeys), configdrive.Secret(s.UserData), s.DigitalOcean)
	return 0
}
