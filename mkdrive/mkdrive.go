// Package mkdrive builds config-2 drive images: the OpenStack config drive
// (and DigitalOcean's variant of it) that configdrive reads, as an ISO9660
// image with Rock Ridge and Joliet names or as a FAT32 image. It is what
// cloud-localds is to cloud-init's NoCloud: a way to test an image locally.
//
// Building is two steps: Files turns a Spec into the drive's files (a pure
// function), Write puts files into an image, atomically.
package mkdrive

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"unicode/utf8"
)

// versions are the openstack/ directories written, all with the same
// content, as DigitalOcean does (see ../shared/seeds/digital-ocean.md).
var versions = [...]string{"2012-08-10", "2015-10-16", "latest"}

// MaxFileSize is the largest file Files writes: configdrive reads at most
// 1 MiB of each file, so a bigger one would make a drive the agent refuses.
const MaxFileSize = 1 << 20

// DefaultNetworkData is network_data.json when none is given: no links, no
// networks, so the agent falls back to DHCP.
const DefaultNetworkData = `{"links":[],"networks":[],"services":[]}`

// Spec says what a drive holds.
type Spec struct {
	// UUID is meta_data.json's uuid. With DigitalOcean it is also the
	// droplet id and must be a decimal number, as on a real droplet.
	UUID     string
	Hostname string // also written as "name"; omitted when empty
	// AvailabilityZone is availability_zone, and DigitalOcean's region.
	// Empty means "nova" (Nova's default zone), or "local" with DigitalOcean.
	AvailabilityZone string
	// PublicKeys are authorized_keys lines (see ParseAuthorizedKeys),
	// written as public_keys "0", "1", ... in this order.
	PublicKeys []string
	Meta       map[string]string // meta_data.json's meta; omitted when empty
	// NetworkData is network_data.json, a JSON object; nil means
	// DefaultNetworkData.
	NetworkData []byte
	UserData    []byte // openstack/<v>/user_data; empty writes an empty file
	// DigitalOcean adds digitalocean_meta_data.json at the root.
	DigitalOcean bool
}

// openstackMeta is meta_data.json as Nova writes it (the fields we set).
type openstackMeta struct {
	UUID             string            `json:"uuid"`
	InstanceID       string            `json:"instance_id,omitempty"` // DigitalOcean writes the droplet id here
	Hostname         string            `json:"hostname,omitempty"`
	Name             string            `json:"name,omitempty"`
	AvailabilityZone string            `json:"availability_zone"`
	LaunchIndex      int               `json:"launch_index"`
	PublicKeys       map[string]string `json:"public_keys,omitempty"`
	Meta             map[string]string `json:"meta,omitempty"`
}

// doMeta is digitalocean_meta_data.json, the schema of DigitalOcean's
// metadata/v1.json.
type doMeta struct {
	DropletID  int64        `json:"droplet_id"`
	Hostname   string       `json:"hostname"`
	UserData   string       `json:"user_data"`
	VendorData string       `json:"vendor_data"`
	PublicKeys []string     `json:"public_keys"`
	Region     string       `json:"region"`
	Interfaces doInterfaces `json:"interfaces"`
	DNS        doDNS        `json:"dns"`
	Features   doFeatures   `json:"features"`
}

type doInterfaces struct {
	Public  []doInterface `json:"public"`
	Private []doInterface `json:"private"`
}

type doInterface struct {
	MAC  string  `json:"mac"`
	Type string  `json:"type"`
	IPv4 *doIPv4 `json:"ipv4,omitempty"`
}

type doIPv4 struct {
	Address string `json:"ip_address"`
	Netmask string `json:"netmask"`
	Gateway string `json:"gateway,omitempty"`
}

type doDNS struct {
	Nameservers []string `json:"nameservers"`
}

type doFeatures struct {
	DHCPEnabled bool `json:"dhcp_enabled"`
}

// Files returns the files of the drive s describes, by slash-separated path
// from the drive's root: openstack/<v>/{meta_data.json, network_data.json,
// vendor_data.json, user_data} for v in 2012-08-10, 2015-10-16 and latest,
// all three the same, and, with DigitalOcean, digitalocean_meta_data.json.
func Files(s Spec) (map[string][]byte, error) {
	if s.UUID == "" {
		return nil, errors.New("build meta_data.json: uuid is empty")
	}
	zone := s.AvailabilityZone
	switch {
	case zone == "" && s.DigitalOcean:
		zone = "local"
	case zone == "":
		zone = "nova"
	}
	network := s.NetworkData
	if network == nil {
		network = []byte(DefaultNetworkData)
	}
	if err := checkObject(network); err != nil {
		return nil, fmt.Errorf("check network_data.json: %w", err)
	}

	meta := openstackMeta{
		UUID:             s.UUID,
		Hostname:         s.Hostname,
		Name:             s.Hostname,
		AvailabilityZone: zone,
		Meta:             s.Meta,
	}
	if len(s.PublicKeys) > 0 {
		meta.PublicKeys = make(map[string]string, len(s.PublicKeys))
		for i, k := range s.PublicKeys {
			meta.PublicKeys[strconv.Itoa(i)] = k
		}
	}
	files := make(map[string][]byte)
	if s.DigitalOcean {
		id, err := strconv.ParseInt(s.UUID, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("build digitalocean_meta_data.json: uuid %q is not a droplet id (a positive decimal number)", s.UUID)
		}
		meta.InstanceID = s.UUID
		do := doMeta{
			DropletID:  id,
			Hostname:   s.Hostname,
			PublicKeys: append([]string{}, s.PublicKeys...),
			Region:     zone,
		}
		do.Interfaces, do.DNS, do.Features = doNetwork(network)
		// JSON strings hold text: binary user data (gzip) stays in
		// user_data only.
		if utf8.Valid(s.UserData) {
			do.UserData = string(s.UserData)
		}
		b, err := marshal(do)
		if err != nil {
			return nil, fmt.Errorf("build digitalocean_meta_data.json: %w", err)
		}
		files["digitalocean_meta_data.json"] = b
	}
	metaJSON, err := marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("build meta_data.json: %w", err)
	}
	for _, v := range versions {
		dir := "openstack/" + v + "/"
		files[dir+"meta_data.json"] = metaJSON
		files[dir+"network_data.json"] = network
		files[dir+"vendor_data.json"] = []byte("{}")
		files[dir+"user_data"] = s.UserData
		if s.UserData == nil {
			files[dir+"user_data"] = []byte{}
		}
	}
	for _, name := range []string{"digitalocean_meta_data.json", "openstack/latest/meta_data.json", "openstack/latest/network_data.json", "openstack/latest/user_data"} {
		if b := files[name]; len(b) > MaxFileSize {
			return nil, fmt.Errorf("build %s: %d bytes, more than the %d configdrive reads", name, len(b), MaxFileSize)
		}
	}
	return files, nil
}

func marshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// RandomUUID returns a random (version 4) UUID, as Nova gives an instance.
func RandomUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // RFC 9562 section 5.4: version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// RandomDropletID returns a random nine-digit decimal id, the form of a
// DigitalOcean droplet id (the seed's drive has 129714139).
func RandomDropletID() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(900_000_000))
	if err != nil {
		return "", fmt.Errorf("read random number: %w", err)
	}
	return strconv.FormatInt(n.Int64()+100_000_000, 10), nil
}

// ReadNetworkData reads a network_data.json file and checks that it is a
// JSON object, naming the file when it is not.
func ReadNetworkData(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read network data: %w", err)
	}
	if err := checkObject(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func checkObject(b []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	return nil
}

// Request is a drive to make from files on disk, as the mkdrive command
// takes it.
type Request struct {
	Output          string
	Format          Format
	KeyFiles        []string // authorized_keys files, read by ReadKeys
	NetworkDataFile string   // "" for DefaultNetworkData
	UserDataFile    string   // "" for an empty user_data
	// Spec holds the rest. An empty UUID gets RandomUUID or, with
	// DigitalOcean, RandomDropletID.
	Spec Spec
}

// Make reads the request's files, fills in the uuid and writes the drive.
// It returns the Spec written.
func Make(r Request) (Spec, error) {
	s := r.Spec
	for _, f := range r.KeyFiles {
		keys, err := ReadKeys(f)
		if err != nil {
			return s, err
		}
		s.PublicKeys = append(s.PublicKeys, keys...)
	}
	var err error
	if r.NetworkDataFile != "" {
		if s.NetworkData, err = ReadNetworkData(r.NetworkDataFile); err != nil {
			return s, err
		}
	}
	if r.UserDataFile != "" {
		if s.UserData, err = os.ReadFile(r.UserDataFile); err != nil {
			return s, fmt.Errorf("read user data: %w", err)
		}
	}
	if s.UUID == "" {
		newID := RandomUUID
		if s.DigitalOcean {
			newID = RandomDropletID
		}
		if s.UUID, err = newID(); err != nil {
			return s, err
		}
	}
	files, err := Files(s)
	if err != nil {
		return s, err
	}
	return s, Write(r.Output, r.Format, files)
}
