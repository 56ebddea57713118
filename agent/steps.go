package agent

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// Outcome is what became of one step.
type Outcome string

const (
	// OK: the step did its work (which may have changed nothing).
	OK Outcome = "ok"
	// Failed: the step returned an error or panicked.
	Failed Outcome = "failed"
	// Skipped: the step did not apply (--skip, nothing to do, a step it
	// depends on gave it nothing). It does not count against the exit
	// status.
	Skipped Outcome = "skipped"
	// Abandoned: the overall deadline passed before the step started or
	// while it was still running.
	Abandoned Outcome = "abandoned"
)

// StepResult reports one step. It is written to state.json as is, so it
// never holds a secret.
type StepResult struct {
	Name     string        `json:"name"`
	Outcome  Outcome       `json:"outcome"`
	Duration time.Duration `json:"duration_ns"`
	// Summary is the log line's text: "2 keys installed in ...".
	Summary string `json:"summary,omitempty"`
	// Changes lists what the step changed on the system; empty when a
	// rerun found everything in place.
	Changes  []string `json:"changes,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Error    string   `json:"error,omitempty"`
	// Facts are machine-readable details (seed_bytes, keys_file, ...).
	Facts map[string]string `json:"facts,omitempty"`
}

// Record is what a running step writes its result into. Each step has its
// own, handed to the runner only when the step returns, so a step that is
// abandoned and finishes later races with nobody.
type Record struct {
	summary  string
	changes  []string
	warnings []string
	skipped  bool
	facts    map[string]string
}

// Summary sets the step's one-line summary.
func (r *Record) Summary(format string, args ...any) { r.summary = fmt.Sprintf(format, args...) }

// Changed records one change made to the system.
func (r *Record) Changed(format string, args ...any) {
	r.changes = append(r.changes, fmt.Sprintf(format, args...))
}

// Warn records a problem that did not make the step fail.
func (r *Record) Warn(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// Skip marks the step as not applying, with the reason as its summary.
// The step should then return nil.
func (r *Record) Skip(format string, args ...any) {
	r.skipped = true
	r.Summary(format, args...)
}

// Fact records a machine-readable detail.
func (r *Record) Fact(key, value string) {
	if r.facts == nil {
		r.facts = make(map[string]string)
	}
	r.facts[key] = value
}

// Step is one unit of work. Run returns an error when the step failed; it
// should honour ctx, but the runner does not rely on it.
type Step struct {
	Name string
	Run  func(ctx context.Context, rec *Record) error
}

// Stage is a set of steps started together; the next stage starts when
// every step of this one has returned or been abandoned.
type Stage []Step

// Runner runs stages in order under one overall deadline. Every step runs
// in its own goroutine, so a step that ignores its context cannot hold the
// run past the deadline, and a panic in it is recovered and reported.
type Runner struct {
	// OnResult is called, from the runner's goroutine, as each step ends.
	OnResult func(StepResult)
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	deadline time.Time
	skip     map[string]string
}

// NewRunner returns a runner whose deadline is timeout from now.
func NewRunner(timeout time.Duration) *Runner {
	r := &Runner{}
	r.deadline = r.now().Add(timeout)
	return r
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetDeadline moves the overall deadline (notos.timeout= is only known once
// the kernel command line has been read). It applies to the stages that
// start afterwards.
func (r *Runner) SetDeadline(t time.Time) {
	r.mu.Lock()
	r.deadline = t
	r.mu.Unlock()
}

// SetSkips sets which steps to skip (a step name → the reason), for the
// stages that start afterwards.
func (r *Runner) SetSkips(skip map[string]string) {
	r.mu.Lock()
	r.skip = skip
	r.mu.Unlock()
}

// Deadline returns the overall deadline.
func (r *Runner) Deadline() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deadline
}

// Run runs the stages in order and returns one result per step, in the
// order the steps were given.
func (r *Runner) Run(ctx context.Context, stages ...Stage) []StepResult {
	var results []StepResult
	for _, st := range stages {
		results = append(results, r.stage(ctx, st)...)
	}
	return results
}

type done struct {
	i   int
	res StepResult
}

// stage starts every step of st and waits for them until the deadline.
func (r *Runner) stage(parent context.Context, st Stage) []StepResult {
	results := make([]StepResult, len(st))
	r.mu.Lock()
	deadline, skips := r.deadline, r.skip
	r.mu.Unlock()
	ctx, cancel := context.WithDeadline(parent, deadline)
	defer cancel()

	// Buffered so that a step finishing after the deadline never blocks.
	ch := make(chan done, len(st))
	started := make([]time.Time, len(st))
	pending := 0
	for i, s := range st {
		switch reason, skip := skips[s.Name]; {
		case skip:
			results[i] = StepResult{Name: s.Name, Outcome: Skipped, Summary: reason}
			r.report(results[i])
		case ctx.Err() != nil:
			results[i] = StepResult{Name: s.Name, Outcome: Abandoned, Error: "not started: the deadline had passed"}
			r.report(results[i])
		default:
			started[i] = r.now()
			pending++
			go r.runStep(ctx, i, s, started[i], ch)
		}
	}
	for pending > 0 {
		select {
		case d := <-ch:
			results[d.i] = d.res
			pending--
			r.report(d.res)
		case <-ctx.Done():
			// Whatever has not answered is abandoned; its goroutine
			// may finish later and write into the buffered channel.
			for {
				select {
				case d := <-ch:
					results[d.i] = d.res
					r.report(d.res)
					continue
				default:
				}
				break
			}
			for i, s := range st {
				if !started[i].IsZero() && results[i].Name == "" {
					results[i] = StepResult{
						Name: s.Name, Outcome: Abandoned, Duration: r.now().Sub(started[i]),
						Error: "still running at the deadline",
					}
					r.report(results[i])
				}
			}
			return results
		}
	}
	return results
}

// runStep runs one step and sends its result; a panic becomes a failure.
func (r *Runner) runStep(ctx context.Context, i int, s Step, start time.Time, ch chan<- done) {
	rec := &Record{}
	res := StepResult{Name: s.Name}
	defer func() {
		if p := recover(); p != nil {
			res.Outcome = Failed
			res.Error = fmt.Sprintf("panic: %v", p)
			res.Warnings = append(rec.warnings, "stack: "+string(debug.Stack()))
		}
		res.Duration = r.now().Sub(start)
		ch <- done{i, res}
	}()
	err := s.Run(ctx, rec)
	res.Summary, res.Changes, res.Warnings, res.Facts = rec.summary, rec.changes, rec.warnings, rec.facts
	switch {
	case err != nil:
		res.Outcome, res.Error = Failed, err.Error()
	case rec.skipped:
		res.Outcome = Skipped
	default:
		res.Outcome = OK
	}
}

func (r *Runner) report(res StepResult) {
	if r.OnResult != nil {
		r.OnResult(res)
	}
}

// ExitCode is 0 when every step that applied succeeded, 1 otherwise. It is
// never 100: runit halts the machine when stage 1 exits 100.
func ExitCode(results []StepResult) int {
	for _, res := range results {
		if res.Outcome != OK && res.Outcome != Skipped {
			return 1
		}
	}
	return 0
}

// Go runs fn in its own goroutine, turning a panic there into an error,
// and waits for it or for ctx. Steps use it for any goroutine they start.
func Go(ctx context.Context, fn func(context.Context) error) error {
	ch := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ch <- fmt.Errorf("panic: %v", p)
			}
		}()
		ch <- fn(ctx)
	}()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
