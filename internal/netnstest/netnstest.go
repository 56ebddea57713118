// Package netnstest gives a Tier 1 test a pair of private network
// namespaces joined by a veth pair, so that nothing the test configures
// reaches the machine's own network, hostname or /etc.
//
// The client namespace (NS) holds the link under test, named "eth0"; its
// peer namespace (NS.Peer) holds the other end, "srv0", with ServerAddr on
// it, where StartDnsmasq runs a real DHCP server. Neither end ever exists in
// the host's namespace: the pair is created inside the client namespace with
// its peer end placed directly in the server namespace.
//
// Each namespace gets a private /etc/netns/<name>/resolv.conf, which
// `ip netns exec` bind-mounts over /etc/resolv.conf, so a program run inside
// cannot overwrite the host's resolver configuration.
package netnstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/notos-agent/notos-agent/internal/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Defaults of the pair New creates.
const (
	ClientLink = "eth0"
	ServerLink = "srv0"
)

// ServerAddr is the address New puts on the server end.
var ServerAddr = netip.MustParsePrefix("10.77.0.1/24")

// NS is one network namespace made by New.
type NS struct {
	Name string // the namespace, as `ip netns` names it
	Link string // the veth end inside this namespace
	// Peer is the other namespace of the pair: the server side for the
	// client NS that New returns, and the client side for that server.
	Peer *NS

	ip string // path of the ip program
}

// New creates a client and a server namespace joined by a veth pair, with
// lo and both veth ends up and ServerAddr on the server end. Everything is
// deleted by t.Cleanup. Outside CI it skips the test when not root or when
// `ip` is missing; with CI=true it fails it.
func New(t testing.TB) *NS {
	t.Helper()
	Tier1(t)
	ipPath := testenv.RequireCommands(t, "ip")["ip"]

	id := randomID(t)
	c := &NS{Name: "nt-" + id, Link: ClientLink, ip: ipPath}
	s := &NS{Name: "nt-" + id + "-s", Link: ServerLink, ip: ipPath}
	c.Peer, s.Peer = s, c
	for _, ns := range []*NS{c, s} {
		ns.create(t)
	}
	c.Run(t, "ip", "link", "add", ClientLink, "type", "veth", "peer", "name", ServerLink, "netns", s.Name)
	s.Run(t, "ip", "addr", "add", ServerAddr.String(), "dev", ServerLink)
	s.Run(t, "ip", "link", "set", ServerLink, "up")
	c.Run(t, "ip", "link", "set", ClientLink, "up")
	return c
}

// Tier1 skips the test under `make unit` (NOTOS_TIER0_ONLY set), and
// otherwise needs root: skipped outside CI, failed under CI=true.
func Tier1(t testing.TB) {
	t.Helper()
	if os.Getenv("NOTOS_TIER0_ONLY") != "" {
		t.Skip("skipped: NOTOS_TIER0_ONLY is set (Tier 1 test)")
	}
	testenv.RequireRoot(t)
}

func randomID(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("read random bytes for a namespace name: %v", err)
	}
	return hex.EncodeToString(b)
}

// create makes the namespace, its private resolv.conf and brings lo up.
func (ns *NS) create(t testing.TB) {
	t.Helper()
	etc := filepath.Join("/etc/netns", ns.Name)
	// Registered first so that it runs last, after the namespace is gone.
	t.Cleanup(func() {
		if err := os.RemoveAll(etc); err != nil {
			t.Errorf("remove %s: %v", etc, err)
		}
	})
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatalf("create %s: %v", etc, err)
	}
	conf := filepath.Join(etc, "resolv.conf")
	if err := os.WriteFile(conf, []byte("# private to test namespace "+ns.Name+"\n"), 0o644); err != nil {
		t.Fatalf("write %s: %v", conf, err)
	}
	if out, err := exec.Command(ns.ip, "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ns.ip, "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns.Name, err, out)
		}
	})
	ns.Run(t, "ip", "link", "set", "lo", "up")
}

// Exec returns a command that runs name with args inside the namespace
// (through `ip netns exec`, so /etc/netns/<name>/resolv.conf is in place).
func (ns *NS) Exec(name string, args ...string) *exec.Cmd {
	return exec.Command(ns.ip, append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs args inside the namespace and returns its standard output; it
// fails the test, with the output, when the command fails.
func (ns *NS) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Try(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Try is Run for commands allowed to fail: the error includes stderr.
func (ns *NS) Try(args ...string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("netns %s: no command", ns.Name)
	}
	cmd := ns.Exec(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("netns %s: %q: %w\n%s%s", ns.Name, args, err, out, stderr.Bytes())
	}
	return string(out), nil
}

// Handle opens a netlink handle inside the namespace, closed by t.Cleanup.
func (ns *NS) Handle(t testing.TB) *netlink.Handle {
	t.Helper()
	nsh, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatalf("open netns %s: %v", ns.Name, err)
	}
	defer nsh.Close() // the handle keeps its own sockets in the namespace
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatalf("netlink handle in netns %s: %v", ns.Name, err)
	}
	t.Cleanup(h.Close)
	return h
}

// NsHandle opens the namespace itself (for netlink subscriptions, such as
// netlink.LinkSubscribeOptions.Namespace), closed by t.Cleanup.
func (ns *NS) NsHandle(t testing.TB) netns.NsHandle {
	t.Helper()
	nsh, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatalf("open netns %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { nsh.Close() })
	return nsh
}

// AddVeth adds another veth pair: name inside this namespace, with the MAC
// address mac when not empty, and peer in ns.Peer. Both ends are left down.
func (ns *NS) AddVeth(t testing.TB, name, mac, peer string) {
	t.Helper()
	args := []string{"ip", "link", "add", name}
	if mac != "" {
		args = append(args, "address", mac)
	}
	ns.Run(t, append(args, "type", "veth", "peer", "name", peer, "netns", ns.Peer.Name)...)
}

// IPJSON runs `ip -j <object> show args...` inside the namespace and
// decodes its output, as generic JSON values.
func (ns *NS) IPJSON(t testing.TB, object string, args ...string) []map[string]any {
	t.Helper()
	var v []map[string]any
	ns.ipJSON(t, &v, []string{object}, args...)
	return v
}

// ipJSON runs `ip -j <object...> show args...` and decodes it into v.
func (ns *NS) ipJSON(t testing.TB, v any, object []string, args ...string) {
	t.Helper()
	cmd := append(append(append([]string{"ip", "-j"}, object...), "show"), args...)
	out := ns.Run(t, cmd...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("netns %s: decode %q: %v\n%s", ns.Name, cmd, err, out)
	}
}

// Link is one entry of `ip -j link show`.
type Link struct {
	Name      string   `json:"ifname"`
	Flags     []string `json:"flags"`
	MTU       int      `json:"mtu"`
	OperState string   `json:"operstate"`
	Address   string   `json:"address"`
}

// AddrInfo is one address of `ip -j addr show`. Lifetimes are seconds;
// 4294967295 means forever.
type AddrInfo struct {
	Family    string `json:"family"`
	Local     string `json:"local"`
	PrefixLen int    `json:"prefixlen"`
	Broadcast string `json:"broadcast,omitempty"`
	Scope     string `json:"scope"`
	Valid     uint32 `json:"valid_life_time"`
	Preferred uint32 `json:"preferred_life_time"`
}

// LinkAddrs is one link of `ip -j addr show` with its addresses.
type LinkAddrs struct {
	Link
	Addrs []AddrInfo `json:"addr_info"`
}

// Route is one entry of `ip -j route show`.
type Route struct {
	Dst      string   `json:"dst"`
	Gateway  string   `json:"gateway,omitempty"`
	Dev      string   `json:"dev"`
	Protocol string   `json:"protocol,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	PrefSrc  string   `json:"prefsrc,omitempty"`
	Metric   int      `json:"metric,omitempty"`
	Flags    []string `json:"flags,omitempty"`
	Type     string   `json:"type,omitempty"`
}

// Links decodes `ip -j link show args...`.
func (ns *NS) Links(t testing.TB, args ...string) []Link {
	t.Helper()
	var v []Link
	ns.ipJSON(t, &v, []string{"link"}, args...)
	return v
}

// Addrs decodes `ip -j addr show args...`.
func (ns *NS) Addrs(t testing.TB, args ...string) []LinkAddrs {
	t.Helper()
	var v []LinkAddrs
	ns.ipJSON(t, &v, []string{"addr"}, args...)
	return v
}

// Routes decodes `ip -j route show args...` (IPv4; Routes6 for IPv6).
func (ns *NS) Routes(t testing.TB, args ...string) []Route {
	t.Helper()
	var v []Route
	ns.ipJSON(t, &v, []string{"route"}, args...)
	return v
}

// Routes6 decodes `ip -j -6 route show args...`.
func (ns *NS) Routes6(t testing.TB, args ...string) []Route {
	t.Helper()
	var v []Route
	ns.ipJSON(t, &v, []string{"-6", "route"}, args...)
	return v
}
