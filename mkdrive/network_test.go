package mkdrive

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../shared/fixtures/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// qemuNetworkData is QEMU's user network (-netdev user) as network_data.json.
const qemuNetworkData = `{"links":[{"id":"eth0","type":"phy","ethernet_mac_address":"52:54:00:12:34:56"}],
"networks":[{"id":"n0","type":"ipv4","link":"eth0","ip_address":"10.0.2.15","netmask":"255.255.255.0",
"routes":[{"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"10.0.2.2"}]}],
"services":[{"type":"dns","address":"10.0.2.3"}]}`

func TestDONetwork(t *testing.T) {
	none := doInterfaces{Public: []doInterface{}, Private: []doInterface{}}
	for _, tc := range []struct {
		name    string
		network []byte
		ifs     doInterfaces
		dns     []string
		dhcp    bool
	}{
		{"default", []byte(DefaultNetworkData), none, []string{}, true},
		{"QEMU user network", []byte(qemuNetworkData), doInterfaces{
			Public:  []doInterface{{MAC: "52:54:00:12:34:56", Type: "public", IPv4: &doIPv4{Address: "10.0.2.15", Netmask: "255.255.255.0", Gateway: "10.0.2.2"}}},
			Private: []doInterface{},
		}, []string{"10.0.2.3"}, false},
		{"IBM Classic: the NIC with the default route is public", fixture(t, "afterburn/ibmcloud-classic-vfat-network_data-static-routes.json"), doInterfaces{
			Public:  []doInterface{{MAC: "06:f6:71:3b:64:01", Type: "public", IPv4: &doIPv4{Address: "133.133.209.229", Netmask: "255.255.255.240", Gateway: "133.133.209.225"}}},
			Private: []doInterface{{MAC: "06:52:db:01:ff:d9", Type: "private", IPv4: &doIPv4{Address: "10.135.202.146", Netmask: "255.255.255.192"}}},
		}, []string{"10.0.80.11", "10.0.80.12"}, false},
		{"kubevirt: static eth0, DHCP on the others", fixture(t, "afterburn/kubevirt-network_data-static-dualstack-dhcp-ipv6dns.json"), doInterfaces{
			Public:  []doInterface{{MAC: "06:aa:bb:cc:dd:00", Type: "public", IPv4: &doIPv4{Address: "192.168.1.10", Netmask: "255.255.255.0", Gateway: "192.168.1.1"}}},
			Private: []doInterface{},
		}, []string{"8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844"}, true},
		{"CIDR address, upper-case MAC, no route", []byte(`{"links":[{"id":"l","ethernet_mac_address":"AA:BB:CC:00:11:22"}],"networks":[{"type":"ipv4","link":"l","ip_address":"192.0.2.5/26"}]}`), doInterfaces{
			Public:  []doInterface{},
			Private: []doInterface{{MAC: "aa:bb:cc:00:11:22", Type: "private", IPv4: &doIPv4{Address: "192.0.2.5", Netmask: "255.255.255.192"}}},
		}, []string{}, false},
		{"link without a MAC: not derivable", []byte(`{"links":[{"id":"l"}],"networks":[{"type":"ipv4","link":"l","ip_address":"192.0.2.5","netmask":"255.255.255.0"}]}`), none, []string{}, true},
		{"non-contiguous netmask: not derivable", []byte(`{"links":[{"id":"l","ethernet_mac_address":"aa:bb:cc:00:11:22"}],"networks":[{"type":"ipv4","link":"l","ip_address":"192.0.2.5","netmask":"255.0.255.0"}]}`), none, []string{}, true},
		{"a field of another type", []byte(`{"links":"eth0"}`), none, []string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ifs, dns, features := doNetwork(tc.network)
			if diff := cmp.Diff(tc.ifs, ifs); diff != "" {
				t.Errorf("interfaces (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.dns, dns.Nameservers); diff != "" {
				t.Errorf("nameservers (-want +got):\n%s", diff)
			}
			if features.DHCPEnabled != tc.dhcp {
				t.Errorf("dhcp_enabled = %t, want %t", features.DHCPEnabled, tc.dhcp)
			}
		})
	}
}
