package netcfg

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notos-agent/notos-agent/configdrive"
)

// FuzzPlanFromMetadata feeds arbitrary JSON as network_data.json and as
// DigitalOcean metadata and checks what every plan must hold: each link is
// identified, each address usable, each gateway reachable on its link when
// its route is added, and no two links share a route's destination and
// metric (which would make one RouteReplace undo another).
func FuzzPlanFromMetadata(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join(fixturesDir, "*", "*.json"))
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"links":[{"id":"a","ethernet_mac_address":"02:00:00:00:00:01"}],"networks":[{"id":"n","type":"ipv4","link":"a","ip_address":"10.0.0.2/8","routes":[{"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"192.0.2.1"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, files := range []configdrive.Files{
			{MetaData: []byte("{}"), NetworkData: data},
			{MetaData: []byte("{}"), DigitalOcean: data},
		} {
			md, err := configdrive.Parse(files)
			if err != nil {
				return
			}
			for _, m := range allModes {
				p, err := PlanFromMetadata(md, m)
				if err != nil {
					t.Fatalf("PlanFromMetadata(%s): %v", m, err)
				}
				checkPlan(t, p)
			}
		}
	})
}

func checkPlan(t *testing.T, p Plan) {
	t.Helper()
	type key struct {
		dst    netip.Prefix
		metric int
	}
	owner := map[key]int{}
	for i, lp := range p.Links {
		if lp.MAC == "" && lp.Name == "" {
			t.Errorf("link %d has neither MAC nor name", i)
		}
		if lp.MAC != strings.ToLower(lp.MAC) {
			t.Errorf("link %d: MAC %q not lower case", i, lp.MAC)
		}
		switch lp.Method {
		case MethodStatic, MethodDHCP, MethodKernel:
		default:
			t.Errorf("link %d: method %q", i, lp.Method)
		}
		var onLink []netip.Prefix
		for _, a := range lp.Addrs {
			if !a.Prefix.IsValid() || !usableAddr(a.Prefix.Addr()) {
				t.Errorf("link %d: address %v not usable", i, a.Prefix)
			}
			onLink = append(onLink, a.Prefix.Masked())
		}
		for _, r := range lp.Routes {
			if !r.Dst.IsValid() || r.Dst != r.Dst.Masked() {
				t.Errorf("link %d: route destination %v not a masked prefix", i, r.Dst)
			}
			if r.Gateway.IsValid() {
				reachable := r.Gateway.Is6() && r.Gateway.IsLinkLocalUnicast()
				for _, p := range onLink {
					reachable = reachable || p.Contains(r.Gateway)
				}
				if !reachable {
					t.Errorf("link %d: gateway %s unreachable when its route %s is added", i, r.Gateway, r.Dst)
				}
			} else {
				onLink = append(onLink, r.Dst)
			}
			k := key{r.Dst, r.Metric}
			if o, ok := owner[k]; ok {
				t.Errorf("links %d and %d both route %s with metric %d", o, i, r.Dst, r.Metric)
			}
			owner[k] = i
		}
	}
}
