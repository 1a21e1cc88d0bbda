package processor

import (
	"fmt"
	"runtime/debug"
	"time"
)

// PunctuationType says which clock drives a punctuator.
type PunctuationType int

const (
	// StreamTime punctuators fire as the task's stream time (the largest
	// record timestamp seen) passes each interval. No records, no calls.
	StreamTime PunctuationType = iota
	// WallClock punctuators fire by the system clock, with or without
	// records.
	WallClock
)

func (p PunctuationType) String() string {
	if p == WallClock {
		return "wall-clock"
	}
	return "stream-time"
}

type punctuator struct {
	kind     PunctuationType
	interval time.Duration
	next     time.Time // zero: not started (stream time unknown yet)
	fn       func(now time.Time) error
	node     string
	done     bool
}

// Schedule calls fn every interval of the given clock, on the task's
// goroutine, between records. It returns a function that cancels it.
// Intervals missed (a jump in stream time, a slow task) fire once, not
// once per missed interval. An error or panic from fn is handled by the
// error policy like a failed record.
func (t *Task) Schedule(interval time.Duration, kind PunctuationType, fn func(now time.Time) error) (cancel func()) {
	if interval <= 0 {
		interval = time.Millisecond
	}
	p := &punctuator{kind: kind, interval: interval, fn: fn, node: t.node}
	switch kind {
	case WallClock:
		p.next = t.now().Add(interval)
	default:
		if st := t.StreamTime(); !st.IsZero() {
			p.next = st.Add(interval)
		}
	}
	t.puncts = append(t.puncts, p)
	return func() { p.done = true }
}

// now returns the wall-clock time of the task's environment.
func (t *Task) now() time.Time {
	if t.env.Clock != nil {
		return t.env.Clock()
	}
	return time.Now()
}

// nextWallClock returns when the next wall-clock punctuator is due, or the
// zero time when there is none.
func (t *Task) nextWallClock() time.Time {
	var next time.Time
	for _, p := range t.puncts {
		if !p.done && p.kind == WallClock && (next.IsZero() || p.next.Before(next)) {
			next = p.next
		}
	}
	return next
}

// punctuateWallClock fires the wall-clock punctuators due at now.
func (t *Task) punctuateWallClock(now time.Time) error {
	return t.punctuate(WallClock, now)
}

func (t *Task) punctuateStreamTime() error {
	if len(t.puncts) == 0 {
		return nil
	}
	return t.punctuate(StreamTime, t.StreamTime())
}

func (t *Task) punctuate(kind PunctuationType, now time.Time) error {
	for _, p := range t.puncts {
		if p.done || p.kind != kind {
			continue
		}
		if p.next.IsZero() { // stream time was unknown when scheduled
			p.next = now.Add(p.interval)
			continue
		}
		if now.Before(p.next) {
			continue
		}
		missed := now.Sub(p.next) / p.interval
		p.next = p.next.Add((missed + 1) * p.interval)
		if err := t.firePunctuator(p, now); err != nil {
			at := &RawRecord{Topic: "punctuation", Partition: t.ID.Partition, Offset: -1, Timestamp: now}
			if err := t.fail(at, fmt.Errorf("%s punctuator at %s: %w", kind, now.Format(time.RFC3339Nano), err)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Task) firePunctuator(p *punctuator, now time.Time) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &NodeError{Node: p.node, Err: &PanicError{Value: r, Stack: debug.Stack()}}
		}
	}()
	t.node = p.node
	if err := p.fn(now); err != nil {
		return &NodeError{Node: p.node, Err: err}
	}
	return nil
}
