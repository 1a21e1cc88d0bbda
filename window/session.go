package window

import "time"

// SessionWindows defines sessions: periods of activity of one key separated
// by at least an inactivity gap, as Kafka Streams' SessionWindows.
//
// A session is the closed interval [first, last] of the timestamps of its
// records, both ends inclusive; a session of one record at t is [t, t]. A
// record at t joins every session within the gap of it (see
// [SessionWindows.Merges]); when it joins several, it bridges them and they
// merge into one session. Records arriving out of order can therefore merge
// sessions that were separate. Closed sessions are final and never merge
// (see [SessionWindows.Closed]).
//
// The zero value is not valid; build one with [Session].
type SessionWindows struct {
	gap, grace time.Duration
}

// Session returns session windows that end after the given inactivity gap.
// The grace period is 0 unless set with [SessionWindows.Grace].
func Session(inactivityGap time.Duration) SessionWindows {
	return SessionWindows{gap: inactivityGap}
}

// Grace returns a copy of w whose sessions accept out-of-order records for d
// longer (see Closed). The default is 0.
func (w SessionWindows) Grace(d time.Duration) SessionWindows {
	w.grace = d
	return w
}

// Gap is the inactivity gap: a record within the gap of a session, boundary
// included, belongs to it.
func (w SessionWindows) Gap() time.Duration { return w.gap }

// GracePeriod is the grace period set with Grace, 0 by default.
func (w SessionWindows) GracePeriod() time.Duration { return w.grace }

// Retention is gap + grace, the default retention of a session store, as in
// Kafka Streams. A session store expires sessions by End, and a session is
// closed, and never read again, once stream time passes End + gap + grace.
func (w SessionWindows) Retention() time.Duration { return addDur(w.gap, w.grace) }

// Validate reports every problem with w, joined; each error wraps
// [ErrInvalid] and says how to fix it. The gap must be positive, the grace
// period must not be negative, and both must be whole milliseconds.
func (w SessionWindows) Validate() error {
	p := problems{def: w.String()}
	p.positive("inactivity gap", w.gap, "use a gap > 0 (build windows with Session)")
	p.nonNegative("grace", w.grace, "use a grace ≥ 0")
	return p.err()
}

// String describes w as Go code: "Session(30m)", with ".Grace(1m)" appended
// when a grace period is set.
func (w SessionWindows) String() string {
	return withGrace("Session("+short(w.gap)+")", w.grace)
}

// Merges reports whether a record at ts joins session s: whether ts is
// within the gap of s, boundary inclusive, that is
// s.Start - gap ≤ ts ≤ s.End + gap. A record exactly gap after the end of a
// session joins it; one gap + 1 ms after starts a new session.
func (w SessionWindows) Merges(s Window, ts int64) bool {
	gap := ms(w.gap)
	return add(s.Start, -gap) <= ts && ts <= add(s.End, gap)
}

// CloseTime is the stream time at which session s closes:
// s.End + gap + grace + 1 (saturating at math.MaxInt64).
func (w SessionWindows) CloseTime(s Window) int64 {
	return add(add(add(s.End, ms(w.gap)), ms(w.grace)), 1)
}

// Closed reports whether session s is closed at streamTime:
// streamTime > s.End + gap + grace. Until then a record can still arrive
// that extends s: without grace, in-order records extend a session until
// stream time passes its End by more than the gap; grace admits
// out-of-order records for that much longer. This is the rule of Kafka
// Streams' session aggregation and of its EmitStrategy.onWindowClose.
//
// A closed session is final: records never merge into it. Which records are
// late is decided by [SessionWindows.Merge].
func (w SessionWindows) Closed(s Window, streamTime int64) bool {
	return streamTime >= w.CloseTime(s)
}

// Merge decides what a record at ts does to the sessions of its key, at
// streamTime (the largest timestamp the task has seen, including ts).
//
// sessions may hold any of the key's sessions; Merge uses the open ones that
// [SessionWindows.Merges] ts and ignores the rest, so its answer does not
// depend on how long a store keeps closed sessions. merged is [ts, ts]
// widened to cover the sessions used. The record is late when streamTime >
// ts + gap + grace (the session [ts, ts] is closed), unless one of the
// sessions used starts at or before ts: a record may fall into an open
// session or extend it forward, but not start a session, or extend one
// backwards, once that much behind stream time.
//
// A record that is not late replaces the sessions used by merged; a late
// record is dropped and changes nothing. The rule keeps closed sessions
// final and sessions disjoint. A record no more than grace behind stream
// time is never late, nor is one that extends an open session forward.
//
// Kafka Streams differs for records more than gap + grace behind stream
// time: it merges them into the sessions its store still returns and drops
// them only when the merged session is closed, so such a record can extend
// an open session backwards (with its default retention, 4.4 returns no
// closed session to merge into). Here such a record is late unless an open
// session starts at or before it; when it lands within the gap after a
// closed session, it starts a session of its own, which stays separate
// from the closed one.
func (w SessionWindows) Merge(ts int64, sessions []Window, streamTime int64) (merged Window, late bool) {
	merged = Window{Start: ts, End: ts}
	covered := false
	for _, s := range sessions {
		if !w.Merges(s, ts) || w.Closed(s, streamTime) {
			continue
		}
		merged.Start = min(merged.Start, s.Start)
		merged.End = max(merged.End, s.End)
		covered = covered || s.Start <= ts
	}
	return merged, !covered && w.Closed(Window{Start: ts, End: ts}, streamTime)
}

func (SessionWindows) windows() {}
