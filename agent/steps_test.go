package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// trace records the order in which fake steps ran.
type trace struct {
	mu    sync.Mutex
	order []string
}

func (tr *trace) step(name string, fn func(ctx context.Context, rec *Record) error) Step {
	return Step{Name: name, Run: func(ctx context.Context, rec *Record) error {
		tr.mu.Lock()
		tr.order = append(tr.order, name)
		tr.mu.Unlock()
		return fn(ctx, rec)
	}}
}

func ok(summary string) func(context.Context, *Record) error {
	return func(_ context.Context, rec *Record) error { rec.Summary("%s", summary); return nil }
}

var ignoreDuration = cmpopts.IgnoreFields(StepResult{}, "Duration")

func TestRunnerOrderAndIndependence(t *testing.T) {
	tr := &trace{}
	r := NewRunner(time.Minute)
	r.SetSkips(map[string]string{"skipme": "by --skip"})
	var logged []string
	r.OnResult = func(res StepResult) { logged = append(logged, res.Name) }

	got := r.Run(context.Background(),
		Stage{tr.step("first", func(_ context.Context, rec *Record) error {
			rec.Summary("did it")
			rec.Changed("wrote /x")
			rec.Fact("k", "v")
			return nil
		})},
		Stage{tr.step("broken", func(_ context.Context, rec *Record) error {
			rec.Warn("half done")
			return errors.New("open /dev/vdb: no such device")
		})},
		Stage{tr.step("skipme", ok("never"))},
		Stage{tr.step("nothing", func(_ context.Context, rec *Record) error {
			rec.Skip("no random_seed on the drive")
			return nil
		})},
		Stage{tr.step("last", ok("still ran"))},
	)
	want := []StepResult{
		{Name: "first", Outcome: OK, Summary: "did it", Changes: []string{"wrote /x"}, Facts: map[string]string{"k": "v"}},
		{Name: "broken", Outcome: Failed, Error: "open /dev/vdb: no such device", Warnings: []string{"half done"}},
		{Name: "skipme", Outcome: Skipped, Summary: "by --skip"},
		{Name: "nothing", Outcome: Skipped, Summary: "no random_seed on the drive"},
		{Name: "last", Outcome: OK, Summary: "still ran"},
	}
	if diff := cmp.Diff(want, got, ignoreDuration); diff != "" {
		t.Errorf("results mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"first", "broken", "nothing", "last"}, tr.order); diff != "" {
		t.Errorf("steps ran in the wrong order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"first", "broken", "skipme", "nothing", "last"}, logged); diff != "" {
		t.Errorf("OnResult calls mismatch (-want +got):\n%s", diff)
	}
	if code := ExitCode(got); code != 1 {
		t.Errorf("ExitCode = %d, want 1 (one step failed)", code)
	}
}

// A stage's steps run at the same time: each waits for the other to have
// started, which would deadlock (and hit the deadline) if they ran in turn.
func TestRunnerStageRunsInParallel(t *testing.T) {
	aStarted, bStarted := make(chan struct{}), make(chan struct{})
	wait := func(mine, other chan struct{}) func(context.Context, *Record) error {
		return func(ctx context.Context, _ *Record) error {
			close(mine)
			select {
			case <-other:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	r := NewRunner(10 * time.Second)
	got := r.Run(context.Background(), Stage{
		{Name: "drive", Run: wait(aStarted, bStarted)},
		{Name: "links", Run: wait(bStarted, aStarted)},
	})
	want := []StepResult{{Name: "drive", Outcome: OK}, {Name: "links", Outcome: OK}}
	if diff := cmp.Diff(want, got, ignoreDuration); diff != "" {
		t.Errorf("results mismatch (-want +got):\n%s", diff)
	}
}

// A step that ignores its context cannot hold the run: at the deadline it
// is abandoned, the steps after it are abandoned without starting, and
// Run returns.
func TestRunnerDeadlineAbandonsStepIgnoringContext(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tr := &trace{}
	const timeout = 200 * time.Millisecond
	r := NewRunner(timeout)
	start := time.Now()
	got := r.Run(context.Background(),
		Stage{tr.step("quick", ok("done"))},
		Stage{
			tr.step("stuck", func(context.Context, *Record) error { <-release; return nil }),
			tr.step("sibling", ok("finished in time")),
		},
		Stage{tr.step("later", ok("never"))},
	)
	elapsed := time.Since(start)
	want := []StepResult{
		{Name: "quick", Outcome: OK, Summary: "done"},
		{Name: "stuck", Outcome: Abandoned, Error: "still running at the deadline"},
		{Name: "sibling", Outcome: OK, Summary: "finished in time"},
		{Name: "later", Outcome: Abandoned, Error: "not started: the deadline had passed"},
	}
	if diff := cmp.Diff(want, got, ignoreDuration); diff != "" {
		t.Errorf("results mismatch (-want +got):\n%s", diff)
	}
	if elapsed > timeout+5*time.Second {
		t.Errorf("Run returned after %v, deadline was %v", elapsed, timeout)
	}
	if got[1].Duration < timeout/2 {
		t.Errorf("abandoned step's duration %v, want about %v", got[1].Duration, timeout)
	}
	if code := ExitCode(got); code != 1 {
		t.Errorf("ExitCode = %d, want 1", code)
	}
}

// The deadline can move once the kernel command line is known.
func TestRunnerSetDeadline(t *testing.T) {
	r := NewRunner(time.Hour)
	got := r.Run(context.Background(),
		Stage{{Name: "cmdline", Run: func(context.Context, *Record) error {
			r.SetDeadline(time.Now().Add(-time.Second))
			return nil
		}}},
		Stage{{Name: "net", Run: ok("never")}},
	)
	want := []StepResult{
		{Name: "cmdline", Outcome: OK},
		{Name: "net", Outcome: Abandoned, Error: "not started: the deadline had passed"},
	}
	if diff := cmp.Diff(want, got, ignoreDuration); diff != "" {
		t.Errorf("results mismatch (-want +got):\n%s", diff)
	}
}

// A panic in a step's goroutine, or in a goroutine the step started and
// guarded with Go, is a failure of that step; the next steps still run.
func TestRunnerRecoversPanics(t *testing.T) {
	r := NewRunner(10 * time.Second)
	got := r.Run(context.Background(),
		Stage{{Name: "boom", Run: func(context.Context, *Record) error {
			var m map[string]int
			m["x"] = 1 // a runtime panic, not a call to panic
			return nil
		}}},
		Stage{{Name: "inner", Run: func(ctx context.Context, _ *Record) error {
			return Go(ctx, func(context.Context) error { panic("in a child goroutine") })
		}}},
		Stage{{Name: "after", Run: ok("ran")}},
	)
	if got[0].Outcome != Failed || !strings.Contains(got[0].Error, "panic: assignment to entry in nil map") {
		t.Errorf("boom = %+v, want failed with the panic", got[0])
	}
	if got[1].Outcome != Failed || got[1].Error != "panic: in a child goroutine" {
		t.Errorf("inner = %+v, want failed with the child's panic", got[1])
	}
	if got[2].Outcome != OK {
		t.Errorf("after = %+v, want ok", got[2])
	}
	if code := ExitCode(got); code != 1 {
		t.Errorf("ExitCode = %d, want 1", code)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name     string
		outcomes []Outcome
		want     int
	}{
		{"nothing ran", nil, 0},
		{"all ok", []Outcome{OK, OK}, 0},
		{"ok and skipped", []Outcome{OK, Skipped, Skipped}, 0},
		{"one failed", []Outcome{OK, Failed, OK}, 1},
		{"one abandoned", []Outcome{OK, Abandoned}, 1},
		{"unknown outcome", []Outcome{"weird"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rs []StepResult
			for _, o := range tt.outcomes {
				rs = append(rs, StepResult{Outcome: o})
			}
			got := ExitCode(rs)
			if got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.outcomes, got, tt.want)
			}
			if got == 100 {
				t.Errorf("ExitCode is 100: runit would halt")
			}
		})
	}
}

func TestStepLine(t *testing.T) {
	tests := []struct {
		res  StepResult
		want string
	}{
		{StepResult{Name: "keys", Outcome: OK, Summary: "2 keys installed in /etc/ssh/authorized_keys.d/root", Duration: 1320 * time.Microsecond},
			"keys: 2 keys installed in /etc/ssh/authorized_keys.d/root (1.3ms)"},
		{StepResult{Name: "mounts", Outcome: OK, Duration: 12 * time.Microsecond}, "mounts: ok (12µs)"},
		{StepResult{Name: "seed", Outcome: Skipped, Summary: "no random_seed", Duration: 3 * time.Microsecond}, "seed: skipped: no random_seed (3µs)"},
		{StepResult{Name: "drive", Outcome: Failed, Error: "no config-2 drive", Duration: 5004 * time.Millisecond}, "drive: failed: no config-2 drive (5s)"},
		{StepResult{Name: "net", Outcome: Abandoned, Error: "still running at the deadline", Summary: "eth0: waiting", Duration: 60 * time.Second},
			"net: abandoned: still running at the deadline; eth0: waiting (1m0s)"},
	}
	for _, tt := range tests {
		if got := stepLine(tt.res); got != tt.want {
			t.Errorf("stepLine(%+v) = %q, want %q", tt.res, got, tt.want)
		}
	}
}

func TestLoggerQuietVerboseAndKmsg(t *testing.T) {
	results := []StepResult{
		{Name: "keys", Outcome: OK, Summary: "1 key installed", Changes: []string{"wrote /etc/ssh/authorized_keys.d/root"}},
		{Name: "drive", Outcome: Failed, Error: "no drive", Warnings: []string{"line1\nline2"}},
	}
	tests := []struct {
		name           string
		quiet, verbose bool
		stderr, kmsg   []string
	}{
		{
			name:   "default",
			stderr: []string{"notos-agent: keys: 1 key installed (0s)", "notos-agent: drive: failed: no drive (0s)"},
			kmsg:   []string{"<6>notos-agent: keys: 1 key installed (0s)", "<4>notos-agent: drive: failed: no drive (0s)", "<4>notos-agent: drive: warning: line1 | line2"},
		},
		{
			name:   "quiet shows failures only",
			quiet:  true,
			stderr: []string{"notos-agent: drive: failed: no drive (0s)"},
			kmsg:   []string{"<6>notos-agent: keys: 1 key installed (0s)", "<4>notos-agent: drive: failed: no drive (0s)", "<4>notos-agent: drive: warning: line1 | line2"},
		},
		{
			name:    "verbose adds changes and warnings",
			verbose: true,
			stderr: []string{"notos-agent: keys: 1 key installed (0s)", "notos-agent: keys: changed: wrote /etc/ssh/authorized_keys.d/root",
				"notos-agent: drive: failed: no drive (0s)", "notos-agent: drive: warning: line1 | line2"},
			kmsg: []string{"<6>notos-agent: keys: 1 key installed (0s)", "<7>notos-agent: keys: changed: wrote /etc/ssh/authorized_keys.d/root",
				"<4>notos-agent: drive: failed: no drive (0s)", "<4>notos-agent: drive: warning: line1 | line2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			kmsg := &writes{}
			l := &Logger{Stderr: &stderr, Kmsg: kmsg, Quiet: tt.quiet, Verbose: tt.verbose}
			for _, r := range results {
				l.Step(r)
			}
			if diff := cmp.Diff(tt.stderr, lines(stderr.String())); diff != "" {
				t.Errorf("stderr mismatch (-want +got):\n%s", diff)
			}
			var gotKmsg []string
			for _, w := range kmsg.w {
				if !strings.HasSuffix(w, "\n") || strings.Count(w, "\n") != 1 {
					t.Errorf("kmsg write %q is not exactly one line", w)
				}
				gotKmsg = append(gotKmsg, strings.TrimSuffix(w, "\n"))
			}
			if diff := cmp.Diff(tt.kmsg, gotKmsg); diff != "" {
				t.Errorf("kmsg mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// writes keeps each Write call apart, as /dev/kmsg does.
type writes struct{ w []string }

func (w *writes) Write(b []byte) (int, error) { w.w = append(w.w, string(b)); return len(b), nil }

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// A kernel log that cannot be opened costs nothing but the kernel log.
func TestLoggerWithoutKmsg(t *testing.T) {
	var stderr strings.Builder
	l := &Logger{Stderr: &stderr, KmsgPath: t.TempDir() + "/dev/kmsg"}
	l.Step(StepResult{Name: "keys", Outcome: OK, Summary: "1 key installed"})
	l.Printf("done")
	if diff := cmp.Diff([]string{"notos-agent: keys: 1 key installed (0s)", "notos-agent: done"}, lines(stderr.String())); diff != "" {
		t.Errorf("stderr mismatch (-want +got):\n%s", diff)
	}
}
