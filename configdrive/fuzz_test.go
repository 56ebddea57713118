package configdrive

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// fuzzImages returns real images to seed the filesystem fuzzers: ISOs
// without genisoimage's 300 KiB of trailing padding, and a FAT12 image.
// Without the tools the fuzzers still run on the hand-made seeds.
func fuzzImages(f *testing.F) (isos, fats [][]byte) {
	f.Helper()
	dir := f.TempDir()
	tree := filepath.Join(dir, "tree")
	// A small tree keeps the seeds, and what the fuzzer minimises, small.
	if err := os.MkdirAll(filepath.Join(tree, "openstack/latest"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "openstack/latest/meta_data.json"), []byte(`{"uuid":"u"}`), 0o644); err != nil {
		f.Fatal(err)
	}
	if p, err := testenv.LookPath("genisoimage"); err == nil {
		for i, args := range [][]string{{"-J", "-r"}, {"-J"}} {
			img := filepath.Join(dir, "seed.iso")
			argv := append(append([]string{}, args...), "-quiet", "-no-pad", "-V", "config-2", "-o", img, tree)
			if b, err := exec.Command(p, argv...).CombinedOutput(); err != nil {
				f.Fatalf("genisoimage seed %d: %v\n%s", i, err, b)
			}
			isos = append(isos, readTestFile(f, img))
		}
	}
	if p, err := testenv.LookPath("mkfs.vfat"); err == nil {
		img := filepath.Join(dir, "seed.fat")
		if b, err := exec.Command(p, "-C", "-F", "12", "-n", "CONFIG-2", img, "1440").CombinedOutput(); err != nil {
			f.Fatalf("mkfs.vfat seed: %v\n%s", err, b)
		}
		fats = append(fats, readTestFile(f, img))
	}
	return isos, fats
}

// sparseDevice is a device of zeros holding a few byte ranges. The
// fuzzers feed their input through it so that an input of a few KiB can
// stand for an ISO (whose first 32 KiB are an unused system area): the Go
// fuzzer minimises large inputs very slowly.
type sparseDevice []struct {
	off int64
	b   []byte
}

func (d sparseDevice) ReadAt(p []byte, off int64) (int, error) {
	var size int64
	for _, s := range d {
		size = max(size, s.off+int64(len(s.b)))
	}
	if off >= size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > size-off {
		n = int(size - off)
	}
	clear(p[:n])
	for _, s := range d {
		lo, hi := max(off, s.off), min(off+int64(n), s.off+int64(len(s.b)))
		if lo < hi {
			copy(p[lo-off:hi-off], s.b[lo-s.off:hi-s.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// device puts head at byte 0 (a FAT boot sector and what follows) and
// tail at byte 32768 (ISO volume descriptors and what follows).
func device(head, tail []byte) sparseDevice {
	return sparseDevice{{0, head}, {isoVDStart, tail}}
}

// handMadeISO is the smallest thing that probes as an ISO with a Joliet
// label: a primary and a supplementary descriptor and a terminator.
func handMadeISO() []byte {
	b := make([]byte, isoVDStart+3*isoSector)
	pvd := b[isoVDStart:]
	pvd[0] = isoVDPrimary
	copy(pvd[1:], "CD001")
	copy(pvd[40:72], "CONFIG-2                        ")
	svd := b[isoVDStart+isoSector:]
	svd[0] = isoVDSupp
	copy(svd[1:], "CD001")
	copy(svd[88:], "%/E")
	copy(svd[40:], []byte{0, 'c', 0, 'o', 0, 'n', 0, 'f', 0, 'i', 0, 'g', 0, '-', 0, '2'})
	end := b[isoVDStart+2*isoSector:]
	end[0] = isoVDEnd
	copy(end[1:], "CD001")
	return b
}

func FuzzProbe(f *testing.F) {
	isos, fats := fuzzImages(f)
	for _, b := range isos {
		f.Add([]byte(nil), b[isoVDStart:isoVDStart+4*isoSector])
	}
	for _, b := range fats {
		f.Add(b[:16<<10], []byte(nil))
	}
	f.Add([]byte(nil), handMadeISO()[isoVDStart:])
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		fstype, label, err := Probe(device(head, tail))
		// The checks that guard go-diskfs must themselves hold on
		// anything; their verdict does not matter here.
		if p, perr := probe(device(head, tail)); perr == nil && p.fstype == FSVFAT {
			_ = preflightFAT(device(head, tail), p.bpb)
		}
		if err != nil {
			if fstype != "" || label != "" {
				t.Errorf("Probe failed (%v) but returned %q, %q", err, fstype, label)
			}
			return
		}
		if fstype != FSISO9660 && fstype != FSVFAT {
			t.Errorf("Probe type %q", fstype)
		}
		// Deterministic: Find probes each device on every scan.
		if f2, l2, _ := Probe(device(head, tail)); f2 != fstype || l2 != label {
			t.Errorf("Probe twice: %q %q, then %q %q", fstype, label, f2, l2)
		}
	})
}

// FuzzJolietTree fuzzes the hand-written Joliet reader directly, without
// the recover that guards it in ReadFiles: it must not panic on anything.
// The input is the image after its 32 KiB system area.
func FuzzJolietTree(f *testing.F) {
	isos, _ := fuzzImages(f)
	for _, b := range isos {
		f.Add(b[isoVDStart:])
	}
	f.Add(handMadeISO()[isoVDStart:])
	f.Fuzz(func(t *testing.T, tail []byte) {
		_ = preflightISO(device(nil, tail)) // must not panic; any verdict will do
		j, err := newJolietFS(device(nil, tail))
		if err != nil {
			return
		}
		files, err := readTree(j)
		if err != nil {
			return
		}
		for name, b := range map[string][]byte{"meta": files.MetaData, "network": files.NetworkData, "vendor": files.VendorData, "user": files.UserData, "do": files.DigitalOcean} {
			if len(b) > MaxFileSize {
				t.Errorf("%s: %d bytes read, over the cap", name, len(b))
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	names, err := filepath.Glob(filepath.Join(fixturesDir, "*", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		files := fixtureRole(n, data)
		f.Add(files.MetaData, files.NetworkData, files.DigitalOcean)
	}
	f.Add(readTestFile(f, filepath.Join(doLayout, "openstack/latest/meta_data.json")),
		readTestFile(f, filepath.Join(doLayout, "openstack/latest/network_data.json")),
		readTestFile(f, filepath.Join(doLayout, "digitalocean_meta_data.json")))
	f.Fuzz(func(t *testing.T, meta, network, do []byte) {
		md, err := Parse(Files{MetaData: meta, NetworkData: network, DigitalOcean: do})
		if err != nil {
			if md != nil {
				t.Errorf("Parse failed (%v) but returned %+v", err, md)
			}
			return
		}
		// Every installed key is one valid authorized_keys line, each
		// blob once, in name order.
		blobs := map[string]bool{}
		for _, k := range md.PublicKeys {
			if strings.ContainsAny(k.Line, "\r\n") {
				t.Errorf("key %q: line holds a line break", k.Name)
			}
			pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(k.Line))
			if err != nil || len(rest) != 0 {
				t.Errorf("key %q: installed line does not parse: %v", k.Name, err)
				continue
			}
			if blobs[string(pub.Marshal())] {
				t.Errorf("key %q installed twice", k.Name)
			}
			blobs[string(pub.Marshal())] = true
		}
		if !sort.SliceIsSorted(md.PublicKeys, func(i, j int) bool { return md.PublicKeys[i].Name < md.PublicKeys[j].Name }) {
			t.Errorf("keys not sorted by name")
		}
		// Secrets show only as present or absent.
		out, err := json.Marshal(md)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var shown struct{ AdminPass, UserData string }
		shown.AdminPass, shown.UserData = "?", "?"
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(out, &raw); err != nil {
			t.Fatalf("unmarshal own output: %v", err)
		}
		json.Unmarshal(raw["admin_pass"], &shown.AdminPass)
		json.Unmarshal(raw["user_data"], &shown.UserData)
		if shown.AdminPass != md.AdminPass.String() || shown.UserData != "absent" {
			t.Errorf("secrets shown as %+v", shown)
		}
	})
}
