package configdrive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
)

var (
	stringType = reflect.TypeFor[string]()
	intType    = reflect.TypeFor[int]()
)

// The wire types below mirror the JSON as clouds really send it. Each
// accepts the variants seen in the wild and rejects only what cannot be
// meant (an object where a name belongs).

// flexString is a string that may arrive as a JSON number (droplet_id,
// uuid on DigitalOcean) or null.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*s = flexString(n.String())
		return nil
	}
	return &json.UnmarshalTypeError{Value: jsonKind(b), Type: stringType}
}

// flexInt is an integer that may arrive as a string ("100" for
// bond_miimon) or null.
type flexInt int

func (n *flexInt) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: intType}
	}
	if s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.Atoi(string(s))
	if err != nil {
		return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(string(s)), Type: intType}
	}
	*n = flexInt(v)
	return nil
}

// jsonKind names the JSON type of a raw value for error messages, without
// quoting the value (it may be a secret).
func jsonKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// wireMeta is openstack/<v>/meta_data.json.
type wireMeta struct {
	UUID             flexString                 `json:"uuid"`
	InstanceID       flexString                 `json:"instance_id"`
	Hostname         string                     `json:"hostname"`
	Name             string                     `json:"name"`
	AvailabilityZone string                     `json:"availability_zone"`
	LaunchIndex      flexInt                    `json:"launch_index"`
	Meta             map[string]json.RawMessage `json:"meta"`
	Files            []InjectedFile             `json:"files"`
	NetworkConfig    *struct {
		ContentPath string `json:"content_path"`
	} `json:"network_config"`
	PublicKeys json.RawMessage `json:"public_keys"`
	Keys       []wireKey       `json:"keys"`
	AdminPass  flexString      `json:"admin_pass"` // only its presence is used

	RandomSeed string `json:"random_seed"`
	// crypt_key (IBM Cloud: a key to encrypt the admin password with, not a
	// login key) is deliberately not decoded.
}

// wireKey is one entry of the keys list (Nova 2012-08-10 and later).
type wireKey struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Data string `json:"data"`
}

// wireNetwork is network_data.json.
type wireNetwork struct {
	Links []struct {
		ID                 string     `json:"id"`
		Name               string     `json:"name"`
		Type               string     `json:"type"`
		MAC                string     `json:"ethernet_mac_address"`
		MTU                flexInt    `json:"mtu"`
		VLANID             flexInt    `json:"vlan_id"`
		VLANLink           string     `json:"vlan_link"`
		VLANMAC            string     `json:"vlan_mac_address"`
		BondLinks          []string   `json:"bond_links"`
		BondMode           flexString `json:"bond_mode"`
		BondMIIMon         flexInt    `json:"bond_miimon"`
		BondXmitHashPolicy string     `json:"bond_xmit_hash_policy"`
	} `json:"links"`
	Networks []struct {
		ID             string     `json:"id"`
		Type           string     `json:"type"`
		Link           string     `json:"link"`
		NetworkID      string     `json:"network_id"`
		IPAddress      string     `json:"ip_address"`
		Netmask        flexString `json:"netmask"`
		Gateway        string     `json:"gateway"`
		Routes         []Route    `json:"routes"`
		Services       []Service  `json:"services"`
		DNSNameservers []string   `json:"dns_nameservers"`
	} `json:"networks"`
	Services []Service `json:"services"`
}

// wireDO is digitalocean_meta_data.json (the metadata/v1.json schema).
type wireDO struct {
	DropletID  flexString      `json:"droplet_id"`
	Hostname   string          `json:"hostname"`
	Region     string          `json:"region"`
	PublicKeys json.RawMessage `json:"public_keys"`
	Interfaces struct {
		Public  []wireDOInterface `json:"public"`
		Private []wireDOInterface `json:"private"`
	} `json:"interfaces"`
	DNS struct {
		Nameservers []string `json:"nameservers"`
	} `json:"dns"`
	Features struct {
		DHCPEnabled bool `json:"dhcp_enabled"`
	} `json:"features"`
	// UserData is only tested for presence; whatever its type, its value
	// must not reach an error message.
	UserData json.RawMessage `json:"user_data"`
	// dotty_keys (short-lived droplet console keys) and vendor_data are
	// deliberately not decoded.
}

type wireDOInterface struct {
	MAC        string  `json:"mac"`
	Type       string  `json:"type"`
	IPv4       *DOIPv4 `json:"ipv4"`
	AnchorIPv4 *DOIPv4 `json:"anchor_ipv4"`
	IPv6       *struct {
		Address string  `json:"ip_address"`
		CIDR    flexInt `json:"cidr"`
		Gateway string  `json:"gateway"`
	} `json:"ipv6"`
}

// decodeJSON unmarshals one file and turns encoding/json's errors into one
// that names the file and, for a wrong type, the field.
func decodeJSON(file string, data []byte, v any) error {
	// A UTF-8 byte order mark, as Windows editors write, is not JSON
	// (RFC 8259 section 8.1 lets a parser ignore it).
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("parse %s: field %s: got JSON %s, want %s", file, field, te.Value, te.Type)
	}
	return fmt.Errorf("parse %s: %w", file, err)
}
