package configdrive

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"unicode"
)

// File names as they appear in errors and warnings.
const (
	fileMeta    = "meta_data.json"
	fileNetwork = "network_data.json"
	fileDO      = "digitalocean_meta_data.json"
)

// ErrNoMetaData: the drive has no meta_data.json (ReadFiles) or Files
// holds none (Parse). It is also an fs.ErrNotExist.
var ErrNoMetaData = fmt.Errorf("no meta_data.json: %w", fs.ErrNotExist)

// Parse turns the bytes read off a drive into Metadata. It is pure: no I/O.
//
// meta_data.json is required: missing, malformed, or with a wrong type in a
// field the agent uses, it is an error naming the file and field, and
// nothing is returned (the caller must leave the system as it is).
// The optional files network_data.json and digitalocean_meta_data.json, when
// malformed, only cost their own part: a Warning names the file and the
// problem and Network or DigitalOcean stays nil, so the keys of
// meta_data.json still install. Invalid keys are skipped with a Warning.
//
// InstanceID is instance_id, else uuid, else DigitalOcean's droplet_id;
// Hostname is meta_data.json's, else DigitalOcean's, kept as sent (making
// it a valid host name is the installer's job).
func Parse(f Files) (*Metadata, error) {
	if f.MetaData == nil {
		return nil, ErrNoMetaData
	}
	// Errors name the file as it lies on the drive, so that a console
	// line points at the exact file to fix.
	metaPath := fileMeta
	if f.Version != "" {
		metaPath = "openstack/" + f.Version + "/" + fileMeta
	}
	var w wireMeta
	if err := decodeJSON(metaPath, f.MetaData, &w); err != nil {
		return nil, err
	}
	md := &Metadata{
		Source:           f.Source,
		FSType:           f.FSType,
		Version:          f.Version,
		UUID:             string(w.UUID),
		Hostname:         w.Hostname,
		Name:             w.Name,
		AvailabilityZone: w.AvailabilityZone,
		LaunchIndex:      int(w.LaunchIndex),
		Files:            w.Files,
		PublicKeys:       []PublicKey{},
		VendorData:       f.VendorData,
	}
	if w.AdminPass != "" {
		md.AdminPass = Secret(w.AdminPass)
	}
	if f.UserData != nil {
		md.UserData = Secret(f.UserData)
	}
	if w.NetworkConfig != nil {
		md.NetworkConfigPath = w.NetworkConfig.ContentPath
	}
	if len(w.Meta) > 0 {
		md.Meta = make(map[string]string, len(w.Meta))
		for k, v := range w.Meta {
			md.Meta[k] = metaValue(v)
		}
	}
	if w.RandomSeed != "" {
		seed, err := decodeSeed(w.RandomSeed)
		if err != nil {
			md.Warnings = append(md.Warnings, fmt.Sprintf("%s: random_seed ignored: %v", fileMeta, err))
		} else {
			md.RandomSeed = seed
		}
	}

	cands, err := publicKeysField("public_keys", w.PublicKeys, func(key string, i int) string {
		if key != "" {
			return key
		}
		return strconv.Itoa(i)
	})
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", metaPath, err)
	}
	for i, k := range w.Keys {
		// Only ssh entries are login keys; x509 entries are for Windows
		// password encryption.
		if k.Type != "" && k.Type != "ssh" {
			continue
		}
		name := k.Name
		if name == "" {
			name = "keys/" + strconv.Itoa(i)
		}
		cands = append(cands, splitKeys(k.Data, name, func(key string, _ int) string { return key })...)
	}

	if f.NetworkData != nil {
		nd, err := parseNetwork(f.NetworkData)
		if err != nil {
			md.Warnings = append(md.Warnings, fmt.Sprintf("%v: network data ignored", err))
		} else {
			md.Network = nd
		}
	}
	if f.DigitalOcean != nil {
		do, doKeys, err := parseDigitalOcean(f.DigitalOcean)
		if err != nil {
			md.Warnings = append(md.Warnings, fmt.Sprintf("%v: DigitalOcean metadata ignored", err))
		} else {
			md.DigitalOcean = do
			cands = append(cands, doKeys...)
		}
	}

	keys, skipped, warnings := validateKeys(cands)
	md.PublicKeys = append(md.PublicKeys, keys...)
	md.SkippedKeys = skipped
	md.Warnings = append(md.Warnings, warnings...)

	md.InstanceID = string(w.InstanceID)
	if md.InstanceID == "" {
		md.InstanceID = md.UUID
	}
	if md.InstanceID == "" && md.DigitalOcean != nil {
		md.InstanceID = md.DigitalOcean.DropletID
	}
	if md.Hostname == "" && md.DigitalOcean != nil {
		md.Hostname = md.DigitalOcean.Hostname
	}
	return md, nil
}

// metaValue renders a meta entry: strings as they are, anything else as
// its compact JSON text.
func metaValue(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(v))
}

// decodeSeed decodes random_seed. Nova writes plain base64, but the value
// has been seen with spaces and line breaks in it, which Python's
// b64decode skips and Go's decoder does not: drop all white space first.
func decodeSeed(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	enc := base64.StdEncoding
	if len(clean)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	return b, nil
}

func parseNetwork(data []byte) (*NetworkData, error) {
	var w wireNetwork
	if err := decodeJSON(fileNetwork, data, &w); err != nil {
		return nil, err
	}
	nd := &NetworkData{
		Links:    make([]Link, 0, len(w.Links)),
		Networks: make([]Network, 0, len(w.Networks)),
		Services: w.Services,
	}
	for _, l := range w.Links {
		nd.Links = append(nd.Links, Link{
			ID:                 l.ID,
			Name:               l.Name,
			Type:               l.Type,
			MAC:                strings.ToLower(l.MAC),
			MTU:                int(l.MTU),
			VLANID:             int(l.VLANID),
			VLANLink:           l.VLANLink,
			VLANMAC:            strings.ToLower(l.VLANMAC),
			BondLinks:          l.BondLinks,
			BondMode:           string(l.BondMode),
			BondMIIMon:         int(l.BondMIIMon),
			BondXmitHashPolicy: l.BondXmitHashPolicy,
		})
	}
	for _, n := range w.Networks {
		nd.Networks = append(nd.Networks, Network{
			ID:             n.ID,
			Type:           n.Type,
			Link:           n.Link,
			NetworkID:      n.NetworkID,
			IPAddress:      n.IPAddress,
			Netmask:        string(n.Netmask),
			Gateway:        n.Gateway,
			Routes:         n.Routes,
			Services:       n.Services,
			DNSNameservers: n.DNSNameservers,
		})
	}
	return nd, nil
}

func parseDigitalOcean(data []byte) (*DigitalOcean, []keyCandidate, error) {
	var w wireDO
	if err := decodeJSON(fileDO, data, &w); err != nil {
		return nil, nil, err
	}
	cands, err := publicKeysField("public_keys", w.PublicKeys, func(_ string, i int) string {
		return "digitalocean/" + strconv.Itoa(i)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", fileDO, err)
	}
	do := &DigitalOcean{
		DropletID:   string(w.DropletID),
		Hostname:    w.Hostname,
		Region:      w.Region,
		Public:      doInterfaces(w.Interfaces.Public),
		Private:     doInterfaces(w.Interfaces.Private),
		Nameservers: w.DNS.Nameservers,
		DHCPEnabled: w.Features.DHCPEnabled,
		HasUserData: hasValue(w.UserData),
	}
	return do, cands, nil
}

// hasValue reports whether a raw JSON value is something other than
// absent, null or "".
func hasValue(v json.RawMessage) bool {
	switch strings.TrimSpace(string(v)) {
	case "", "null", `""`:
		return false
	}
	return true
}

func doInterfaces(in []wireDOInterface) []DOInterface {
	if len(in) == 0 {
		return nil
	}
	out := make([]DOInterface, 0, len(in))
	for _, i := range in {
		d := DOInterface{
			MAC:        strings.ToLower(i.MAC),
			Type:       i.Type,
			IPv4:       i.IPv4,
			AnchorIPv4: i.AnchorIPv4,
		}
		if i.IPv6 != nil {
			d.IPv6 = &DOIPv6{Address: i.IPv6.Address, CIDR: int(i.IPv6.CIDR), Gateway: i.IPv6.Gateway}
		}
		out = append(out, d)
	}
	return out
}
