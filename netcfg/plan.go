// Package netcfg turns a DHCP lease or a cloud's network metadata into a
// Plan, and applies a Plan to the system with netlink. Building a Plan is a
// pure function; applying it is a separate step.
package netcfg

import (
	"net/netip"
	"time"
)

// Method says how a link gets its addresses.
type Method string

const (
	MethodStatic Method = "static" // addresses and routes from the metadata
	MethodDHCP   Method = "dhcp"   // DHCPv4 by notos-agent
	MethodKernel Method = "kernel" // IPv6 SLAAC/DHCPv6: left to the kernel's router advertisements
	MethodOff    Method = "off"
)

// Plan is the whole network configuration to apply.
type Plan struct {
	Links []LinkPlan `json:"links"`
	DNS   DNS        `json:"dns"`
	// Warnings are things the plan deliberately leaves out (bonds, VLANs,
	// unsafe names from a DHCP server) with the reason.
	Warnings []string `json:"warnings,omitempty"`
}

// LinkPlan is the configuration of one link. A link is found by Name when
// set, else by MAC.
type LinkPlan struct {
	Name   string   `json:"name,omitempty"`
	MAC    string   `json:"mac,omitempty"` // lower case
	Method Method   `json:"method"`
	MTU    int      `json:"mtu,omitempty"` // 0: leave as is
	Addrs  []Addr   `json:"addrs,omitempty"`
	Routes []Route  `json:"routes,omitempty"`
	DNS    DNS      `json:"dns"`              // what this link's lease or network offered
	IPv6   []Method `json:"ipv6,omitempty"`   // MethodKernel when IPv6 is left to RAs
	Lease  *Lease   `json:"lease,omitempty"`  // the DHCP lease this plan came from
	Source string   `json:"source,omitempty"` // "dhcp", "network_data.json", "digitalocean_meta_data.json"
}

// Addr is one address with its lifetimes. Zero lifetimes mean forever;
// DHCP addresses carry the lease time so that the kernel drops them on
// expiry even when notos-agent is gone.
type Addr struct {
	Prefix    netip.Prefix  `json:"prefix"`
	Broadcast netip.Addr    `json:"broadcast,omitzero"`
	Valid     time.Duration `json:"valid,omitempty"`
	Preferred time.Duration `json:"preferred,omitempty"`
}

// Route is one route. An invalid Gateway means a directly connected (link
// scope) route, such as the on-link host route to a gateway outside the
// leased subnet.
type Route struct {
	Dst     netip.Prefix `json:"dst"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	Src     netip.Addr   `json:"src,omitzero"`
	Metric  int          `json:"metric,omitempty"`
}

// DNS is resolver configuration.
type DNS struct {
	Servers []netip.Addr `json:"servers,omitempty"`
	Search  []string     `json:"search,omitempty"`
	Domain  string       `json:"domain,omitempty"`
}

// Lease is a DHCPv4 lease as saved to /run/notos-agent/lease-<iface>.json
// and taken over by the stage-2 keeper.
type Lease struct {
	Interface string        `json:"interface"`
	Address   netip.Prefix  `json:"address"`
	Server    netip.Addr    `json:"server"` // option 54
	Acquired  time.Time     `json:"acquired"`
	Duration  time.Duration `json:"duration"` // option 51
	T1        time.Duration `json:"t1"`       // option 58, else Duration/2
	T2        time.Duration `json:"t2"`       // option 59, else Duration*7/8
	// Hostname is option 12 when it is a valid DNS name.
	Hostname string `json:"hostname,omitempty"`
	// ACK is the raw DHCPACK, so the keeper rebuilds the exact plan.
	ACK []byte `json:"ack"`
}
