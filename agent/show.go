package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/notos-agent/notos-agent/configdrive"
)

// ShowReport is what `notos-agent show` prints: what the drive says and
// what `keys` would do with it. It is built from a Metadata value field by
// field, never by copying it whole, so that a secret added to Metadata
// later cannot slip out: admin_pass and user_data appear only as
// "present" or "absent".
type ShowReport struct {
	Source     string `json:"source"`
	FSType     string `json:"fstype"`
	Version    string `json:"version"`
	InstanceID string `json:"instance_id"`
	UUID       string `json:"uuid,omitempty"`
	// Hostname is the name `keys` would set ("" when none);
	// HostnameFrom the field it comes from; HostnameError why the
	// metadata's names are unusable.
	Hostname      string `json:"hostname"`
	HostnameFrom  string `json:"hostname_from,omitempty"`
	HostnameError string `json:"hostname_error,omitempty"`

	PublicKeys  []string                 `json:"public_keys"` // authorized_keys lines, in install order
	Keys        []ShowKey                `json:"keys"`
	SkippedKeys []configdrive.SkippedKey `json:"skipped_keys"`

	Network      *configdrive.NetworkData  `json:"network,omitempty"`
	DigitalOcean *configdrive.DigitalOcean `json:"digitalocean,omitempty"`

	AdminPass string   `json:"admin_pass"` // "present" or "absent"
	UserData  string   `json:"user_data"`  // "present" or "absent"
	Warnings  []string `json:"warnings,omitempty"`
}

// ShowKey describes one key without its blob.
type ShowKey struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
	Comment     string `json:"comment,omitempty"`
}

// NewShowReport describes md.
func NewShowReport(md *configdrive.Metadata) ShowReport {
	r := ShowReport{
		Source:       md.Source,
		FSType:       md.FSType,
		Version:      md.Version,
		InstanceID:   md.InstanceID,
		UUID:         md.UUID,
		PublicKeys:   []string{},
		Keys:         []ShowKey{},
		SkippedKeys:  append([]configdrive.SkippedKey{}, md.SkippedKeys...),
		Network:      md.Network,
		DigitalOcean: md.DigitalOcean,
		AdminPass:    md.AdminPass.String(),
		UserData:     md.UserData.String(),
	}
	// configdrive also warns of each skipped key; SkippedKeys says it already.
	skipped := make(map[string]bool)
	for _, k := range md.SkippedKeys {
		skipped[fmt.Sprintf("key %q skipped: %s", k.Name, k.Reason)] = true
	}
	for _, w := range md.Warnings {
		if !skipped[w] {
			r.Warnings = append(r.Warnings, w)
		}
	}
	name, field, err := ChooseHostname(md)
	r.Hostname, r.HostnameFrom = name, field
	if err != nil {
		r.HostnameError = err.Error()
	}
	for _, k := range md.PublicKeys {
		r.PublicKeys = append(r.PublicKeys, k.Line)
		r.Keys = append(r.Keys, ShowKey{Name: k.Name, Type: k.Type, Fingerprint: k.Fingerprint, Comment: keyComment(k.Line)})
	}
	return r
}

// keyComment is the text after "type blob" in an authorized_keys line.
// Lines from the drive carry no options, so the type comes first.
func keyComment(line string) string {
	f := strings.SplitN(line, " ", 3)
	if len(f) < 3 {
		return ""
	}
	return strings.TrimSpace(f[2])
}

// WriteJSON writes r as one indented JSON object.
func (r ShowReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// WriteText writes r for a person: one "field: value" line each, lists
// indented under their heading.
func (r ShowReport) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("source:       %s (%s)", r.Source, textOr(r.FSType, "unknown fs"))
	line("version:      openstack/%s", r.Version)
	line("instance id:  %s", textOr(r.InstanceID, "(none)"))
	switch {
	case r.Hostname != "":
		line("hostname:     %s (from %s)", r.Hostname, r.HostnameFrom)
	case r.HostnameError != "":
		line("hostname:     (unusable: %s)", r.HostnameError)
	default:
		line("hostname:     (none)")
	}
	line("admin_pass:   %s", r.AdminPass)
	line("user_data:    %s", r.UserData)
	line("keys:         %d to install", len(r.Keys))
	for _, k := range r.Keys {
		line("  %s %s %s %s", k.Name, k.Type, k.Fingerprint, k.Comment)
	}
	if len(r.SkippedKeys) > 0 {
		line("skipped keys: %d", len(r.SkippedKeys))
		for _, k := range r.SkippedKeys {
			line("  %s: %s", k.Name, k.Reason)
		}
	}
	r.writeNetwork(line)
	if len(r.Warnings) > 0 {
		line("warnings:")
		for _, s := range r.Warnings {
			line("  %s", s)
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (r ShowReport) writeNetwork(line func(string, ...any)) {
	if n := r.Network; n == nil {
		line("network_data.json: absent")
	} else {
		line("network_data.json: %d links, %d networks", len(n.Links), len(n.Networks))
		for _, l := range n.Links {
			s := fmt.Sprintf("  link %s type=%s mac=%s", l.ID, textOr(l.Type, "null"), textOr(l.MAC, "none"))
			if l.Name != "" {
				s += " name=" + l.Name
			}
			if l.MTU != 0 {
				s += fmt.Sprintf(" mtu=%d", l.MTU)
			}
			if l.VLANID != 0 {
				s += fmt.Sprintf(" vlan=%d on %s", l.VLANID, l.VLANLink)
			}
			if len(l.BondLinks) > 0 {
				s += " bond=" + strings.Join(l.BondLinks, ",")
			}
			line("%s", s)
		}
		for _, nw := range n.Networks {
			s := fmt.Sprintf("  network %s type=%s link=%s", nw.ID, nw.Type, nw.Link)
			if nw.IPAddress != "" {
				s += " address=" + nw.IPAddress
				if nw.Netmask != "" {
					s += "/" + nw.Netmask
				}
			}
			if len(nw.Routes) > 0 {
				s += fmt.Sprintf(" routes=%d", len(nw.Routes))
			}
			line("%s", s)
		}
		for _, sv := range n.Services {
			line("  service %s %s", sv.Type, sv.Address)
		}
	}
	do := r.DigitalOcean
	if do == nil {
		line("digitalocean_meta_data.json: absent")
		return
	}
	line("digitalocean_meta_data.json: droplet %s, region %s, dhcp_enabled=%t", do.DropletID, textOr(do.Region, "(none)"), do.DHCPEnabled)
	for _, set := range []struct {
		kind string
		ifs  []configdrive.DOInterface
	}{{"public", do.Public}, {"private", do.Private}} {
		for _, i := range set.ifs {
			s := fmt.Sprintf("  %s mac=%s", set.kind, i.MAC)
			if i.IPv4 != nil {
				s += fmt.Sprintf(" ipv4=%s/%s gw=%s", i.IPv4.Address, i.IPv4.Netmask, textOr(i.IPv4.Gateway, "none"))
			}
			if i.AnchorIPv4 != nil {
				s += fmt.Sprintf(" anchor=%s/%s", i.AnchorIPv4.Address, i.AnchorIPv4.Netmask)
			}
			if i.IPv6 != nil {
				s += fmt.Sprintf(" ipv6=%s/%d gw=%s", i.IPv6.Address, i.IPv6.CIDR, textOr(i.IPv6.Gateway, "none"))
			}
			line("%s", s)
		}
	}
	if len(do.Nameservers) > 0 {
		line("  nameservers %s", strings.Join(do.Nameservers, " "))
	}
}

// textOr returns s, or none when s is empty.
func textOr(s, none string) string {
	if s == "" {
		return none
	}
	return s
}
