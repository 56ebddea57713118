// Package configdrive finds an OpenStack or DigitalOcean config drive (a
// filesystem labelled config-2), reads its files and parses them into a
// Metadata value. It imports no other package of this project.
//
// The three steps are separate: Find scans /sys/class/block and probes
// each device's label (Probe); ReadFiles reads the files in userspace
// (go-diskfs, plus a small reader for Joliet-only ISOs), falling back to a
// read-only kernel mount (ReadMounted) for block devices it cannot read;
// Parse is a pure function from the bytes to Metadata. Load chains them.
//
// What is an error and what is a warning: meta_data.json missing,
// malformed or with a wrong type in a field the agent uses is an error,
// and nothing is returned, so a caller leaves the system as it was. A
// malformed network_data.json or digitalocean_meta_data.json only costs
// its own part (Network or DigitalOcean stays nil, with a Warning), so
// the keys still install. A key that does not parse is skipped with a
// Warning naming it. Warnings and errors never hold admin_pass, user_data
// or key text.
package configdrive

// Files is what was read off a drive, before any parsing: reading bytes is
// one step, deciding what they mean (Parse) is another.
type Files struct {
	Source  string // the device or image file read
	FSType  string // "iso9660" or "vfat"
	Version string // the openstack/ directory used: "latest" or a date

	MetaData     []byte // openstack/<v>/meta_data.json (required)
	NetworkData  []byte // openstack/<v>/network_data.json, nil when absent
	VendorData   []byte // openstack/<v>/vendor_data.json, nil when absent
	UserData     []byte // openstack/<v>/user_data, nil when absent
	DigitalOcean []byte // digitalocean_meta_data.json at the root, nil when absent
}

// Metadata is everything the agent acts on, parsed from Files.
type Metadata struct {
	Source  string `json:"source"`
	FSType  string `json:"fstype"`
	Version string `json:"version"`

	UUID             string            `json:"uuid,omitempty"`
	InstanceID       string            `json:"instance_id"` // instance_id, else uuid, else DigitalOcean droplet_id
	Hostname         string            `json:"hostname,omitempty"`
	Name             string            `json:"name,omitempty"`
	AvailabilityZone string            `json:"availability_zone,omitempty"`
	LaunchIndex      int               `json:"launch_index,omitempty"`
	Meta             map[string]string `json:"meta,omitempty"`
	Files            []InjectedFile    `json:"files,omitempty"`
	// NetworkConfigPath is network_config.content_path: the legacy ENI
	// pointer (/content/0000). Recorded, not applied.
	NetworkConfigPath string `json:"network_config_path,omitempty"`

	// PublicKeys are the login keys to install: the union of public_keys,
	// keys[type=ssh] and DigitalOcean's public_keys, each parsed by
	// x/crypto/ssh, deduplicated by key blob and sorted by Name.
	PublicKeys []PublicKey `json:"public_keys"`
	// SkippedKeys are the entries that were not valid keys.
	SkippedKeys []SkippedKey `json:"skipped_keys,omitempty"`

	AdminPass  Secret `json:"admin_pass"`
	UserData   Secret `json:"user_data"`
	RandomSeed []byte `json:"-"` // decoded random_seed; not secret, but useless to print
	VendorData []byte `json:"-"`

	Network      *NetworkData  `json:"network,omitempty"`      // network_data.json
	DigitalOcean *DigitalOcean `json:"digitalocean,omitempty"` // digitalocean_meta_data.json

	// Warnings are problems that did not stop parsing (a skipped key, a
	// random_seed that is not base64, ...). They never contain secrets.
	Warnings []string `json:"warnings,omitempty"`
}

// PublicKey is one validated SSH login key.
type PublicKey struct {
	Name        string `json:"name"` // map key, keys[].name, or "digitalocean/<i>"
	Line        string `json:"line"` // one authorized_keys line, no CR or newline
	Type        string `json:"type"` // ssh-ed25519, ssh-rsa, ...
	Fingerprint string `json:"fingerprint"`
}

// SkippedKey is a public_keys entry that did not parse as a key.
type SkippedKey struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// InjectedFile is a files[] entry of meta_data.json (Nova file injection).
type InjectedFile struct {
	Path        string `json:"path"`
	ContentPath string `json:"content_path"`
}

// Secret holds a value that must never reach a log or show's output: its
// String and JSON forms only say whether it is present.
type Secret []byte

func (s Secret) String() string {
	if len(s) == 0 {
		return "absent"
	}
	return "present"
}

// GoString keeps %#v from printing the bytes.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON writes "present" or "absent", never the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// NetworkData is OpenStack's network_data.json, cleaned: MAC addresses are
// lower case, JSON nulls are zero values, numbers sent as strings are
// numbers.
type NetworkData struct {
	Links    []Link    `json:"links"`
	Networks []Network `json:"networks"`
	Services []Service `json:"services,omitempty"`
}

// Link is one links[] entry.
type Link struct {
	ID        string   `json:"id"`
	Name      string   `json:"name,omitempty"` // often absent: match by MAC
	Type      string   `json:"type"`           // phy, vif, ovs, bridge, tap, bond, vlan, ...; "" for null
	MAC       string   `json:"ethernet_mac_address"`
	MTU       int      `json:"mtu,omitempty"` // 0 when null or absent
	VLANID    int      `json:"vlan_id,omitempty"`
	VLANLink  string   `json:"vlan_link,omitempty"`
	VLANMAC   string   `json:"vlan_mac_address,omitempty"`
	BondLinks []string `json:"bond_links,omitempty"`
	BondMode  string   `json:"bond_mode,omitempty"`
	// BondMIIMon is bond_miimon in milliseconds (sent as a number or a string).
	BondMIIMon         int    `json:"bond_miimon,omitempty"`
	BondXmitHashPolicy string `json:"bond_xmit_hash_policy,omitempty"`
}

// Network is one networks[] entry.
type Network struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"` // ipv4, ipv6, ipv4_dhcp, ipv6_dhcp, ipv6_slaac, ipv6_dhcpv6-stateless, ...
	Link      string    `json:"link"` // a Link.ID
	NetworkID string    `json:"network_id,omitempty"`
	IPAddress string    `json:"ip_address,omitempty"` // plain or CIDR form
	Netmask   string    `json:"netmask,omitempty"`    // dotted, IPv6 mask form, or a prefix length
	Gateway   string    `json:"gateway,omitempty"`    // not in the spec, seen in the wild
	Routes    []Route   `json:"routes,omitempty"`
	Services  []Service `json:"services,omitempty"`
	// DNSNameservers is the network-level dns_nameservers (not in the spec,
	// seen in the wild).
	DNSNameservers []string `json:"dns_nameservers,omitempty"`
}

// Route is one routes[] entry.
type Route struct {
	Network string `json:"network"`
	Netmask string `json:"netmask"`
	Gateway string `json:"gateway"`
}

// Service is one services[] entry; Type "dns" is the one used.
type Service struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// DigitalOcean is digitalocean_meta_data.json (the same schema as
// DigitalOcean's metadata/v1.json).
type DigitalOcean struct {
	DropletID   string        `json:"droplet_id"` // sent as a number or a string
	Hostname    string        `json:"hostname,omitempty"`
	Region      string        `json:"region,omitempty"`
	Public      []DOInterface `json:"public,omitempty"`  // interfaces.public
	Private     []DOInterface `json:"private,omitempty"` // interfaces.private
	Nameservers []string      `json:"nameservers,omitempty"`
	DHCPEnabled bool          `json:"dhcp_enabled"` // features.dhcp_enabled
	HasUserData bool          `json:"has_user_data"`
}

// DOInterface is one interfaces.public[] or interfaces.private[] entry.
type DOInterface struct {
	MAC        string  `json:"mac"` // lower case
	Type       string  `json:"type,omitempty"`
	IPv4       *DOIPv4 `json:"ipv4,omitempty"`
	AnchorIPv4 *DOIPv4 `json:"anchor_ipv4,omitempty"`
	IPv6       *DOIPv6 `json:"ipv6,omitempty"`
}

// DOIPv4 is an ipv4 or anchor_ipv4 block.
type DOIPv4 struct {
	Address string `json:"ip_address"`
	Netmask string `json:"netmask"`
	Gateway string `json:"gateway,omitempty"`
}

// DOIPv6 is an ipv6 block. Addresses may arrive upper case and zero padded.
type DOIPv6 struct {
	Address string `json:"ip_address"`
	CIDR    int    `json:"cidr"`
	Gateway string `json:"gateway,omitempty"`
}
