package configdrive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/notos-agent/notos-agent/internal/testenv"
)

// attachLoop attaches img read-only to a free loop device and detaches it
// when the test ends.
func attachLoop(t *testing.T, img string) string {
	t.Helper()
	losetup := testenv.RequireCommands(t, "losetup")["losetup"]
	out, err := exec.Command(losetup, "-f", "--show", "-r", img).CombinedOutput()
	if err != nil {
		testenv.Unavailable(t, "no loop device: losetup -f --show %s: %v: %s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestFindLoopDevice (tier 1, root): a drive on a real loop device is found
// by scanning the real /sys/class/block and read through /dev. Each drive
// gets a random label so no other device on the host can match.
func TestFindLoopDevice(t *testing.T) {
	requireTier1(t)
	tests := []struct {
		kind  imageKind
		label string // written on the drive
		find  string // asked of Find
	}{
		{kindRR, "cfgtest-" + randomHex(t, 4), ""},
		{kindJoliet, "cfgtest-" + randomHex(t, 4), ""},
		// FAT labels are 11 upper-case characters; Find ignores case.
		{kindFAT12, "CT" + strings.ToUpper(randomHex(t, 4)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.kind.name, func(t *testing.T) {
			img := buildImage(t, tt.kind, doLayout, tt.label)
			dev := attachLoop(t, img)
			ctx := context.Background()
			found, err := Find(ctx, FindOptions{Label: strings.ToLower(tt.label), Wait: 5 * time.Second})
			if err != nil {
				t.Fatalf("Find(%q) with %s attached: %v", tt.label, dev, err)
			}
			if found != dev {
				t.Fatalf("Find(%q) = %s, want %s", tt.label, found, dev)
			}
			got, err := ReadFiles(ctx, found, ReadOptions{RunDir: t.TempDir()})
			if err != nil {
				t.Fatalf("ReadFiles(%s): %v", found, err)
			}
			if diff := cmp.Diff(wantFiles(t, doLayout, "latest", dev, tt.kind.fstype), got); diff != "" {
				t.Errorf("ReadFiles(%s) (-want +got):\n%s", dev, diff)
			}
			md, err := Load(ctx, Options{Label: tt.label, Wait: 5 * time.Second, RunDir: t.TempDir()})
			if err != nil || md.Source != dev || md.InstanceID != "129714139" {
				t.Errorf("Load = %+v, %v; want source %s, instance 129714139", md, err, dev)
			}
		})
	}
}

// requireTier1 skips under `make unit` (NOTOS_TIER0_ONLY) and needs root.
func requireTier1(t *testing.T) {
	t.Helper()
	if os.Getenv("NOTOS_TIER0_ONLY") != "" {
		t.Skip("skipped: NOTOS_TIER0_ONLY is set (Tier 1 test)")
	}
	testenv.RequireRoot(t)
}
