package netcfg

import (
	"testing"
	"time"
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
