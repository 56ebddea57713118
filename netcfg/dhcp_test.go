package netcfg

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRetransmitDelay(t *testing.T) {
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0.5, 4 * time.Second},
		{0, 0, 3 * time.Second},
		{0, 0.999999, 5*time.Second - time.Microsecond},
		{1, 0.5, 8 * time.Second},
		{2, 0.5, 16 * time.Second},
		{3, 0.5, 32 * time.Second},
		{4, 0.5, 64 * time.Second},
		{5, 0, 63 * time.Second},
		{40, 0.5, 64 * time.Second},
	}
	for _, tt := range tests {
		got := RetransmitDelay(tt.attempt, tt.r)
		if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("RetransmitDelay(%d, %v) = %s, want %s", tt.attempt, tt.r, got, tt.want)
		}
	}
}

func TestPacketSocketError(t *testing.T) {
	// What mdlayher/packet returns when socket(AF_PACKET) fails.
	missing := &net.OpError{Op: "listen", Net: "packet", Err: os.NewSyscallError("socket", unix.EAFNOSUPPORT)}
	err := packetSocketError("eth0", missing)
	if !errors.Is(err, unix.EAFNOSUPPORT) || !strings.Contains(err.Error(), "af_packet") || !strings.Contains(err.Error(), "eth0") {
		t.Errorf("packetSocketError(EAFNOSUPPORT) = %v, want it to name eth0 and af_packet and wrap EAFNOSUPPORT", err)
	}
	other := packetSocketError("eth0", &net.OpError{Op: "listen", Net: "packet", Err: os.NewSyscallError("socket", unix.EPERM)})
	if strings.Contains(other.Error(), "af_packet") {
		t.Errorf("packetSocketError(EPERM) = %v, should not blame af_packet", other)
	}
}

// RebootWait holds three INIT-REBOOT transmissions whatever the jitter,
// and not a fourth.
func TestRebootDelay(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999999} {
		third := rebootDelay(0, r) + rebootDelay(1, r)
		fourth := third + rebootDelay(2, r)
		if third >= RebootWait || fourth <= RebootWait {
			t.Errorf("jitter %v: third transmission at %s, fourth at %s; want them around RebootWait %s", r, third, fourth, RebootWait)
		}
	}
}
