package window

import "time"

// JoinWindows defines the time bounds of a stream-stream join, as Kafka
// Streams' JoinWindows: a record at t on one side matches the records of
// the other side with timestamps in the closed interval
// [t - before, t + after].
//
// JoinWindows is not a [Windows]: it bounds a join, it does not window an
// aggregation. The zero value matches records with equal timestamps only;
// build one with [JoinWindowsOf].
type JoinWindows struct {
	before, after, grace time.Duration
}

// JoinWindowsOf returns join windows in which a record at t matches
// other-side records in [t - before, t + after]. Either bound may be
// negative, as in Kafka Streams, as long as before + after ≥ 0: before = -1s
// and after = 5s match records 1s to 5s after t. The grace period is 0 unless
// set with [JoinWindows.Grace].
func JoinWindowsOf(before, after time.Duration) JoinWindows {
	return JoinWindows{before: before, after: after}
}

// Grace returns a copy of w that accepts other-side records up to d late
// (see Closed). The default is 0.
func (w JoinWindows) Grace(d time.Duration) JoinWindows {
	w.grace = d
	return w
}

// Before is how far before a record the other side's records may be.
func (w JoinWindows) Before() time.Duration { return w.before }

// After is how far after a record the other side's records may be.
func (w JoinWindows) After() time.Duration { return w.after }

// GracePeriod is the grace period set with Grace, 0 by default.
func (w JoinWindows) GracePeriod() time.Duration { return w.grace }

// Retention is before + after + grace, the default retention of each side's
// join store, as in Kafka Streams: the stores key records by timestamp and
// keep a record at t until stream time passes t + before + after + grace.
func (w JoinWindows) Retention() time.Duration {
	return addDur(addDur(w.before, w.after), w.grace)
}

// Validate reports every problem with w, joined; each error wraps
// [ErrInvalid] and says how to fix it. before + after must not be negative
// (the window must not be empty), the grace period must not be negative, and
// all three must be whole milliseconds.
func (w JoinWindows) Validate() error {
	p := problems{def: w.String()}
	if addDur(w.before, w.after) < 0 {
		p.addf("before %v + after %v is negative, so no record matches; use before + after ≥ 0", w.before, w.after)
	}
	p.millis("before", w.before)
	p.millis("after", w.after)
	p.nonNegative("grace", w.grace, "use a grace ≥ 0")
	return p.err()
}

// String describes w as Go code: "JoinWindowsOf(5s, 5s)", with
// ".Grace(1s)" appended when a grace period is set.
func (w JoinWindows) String() string {
	return withGrace("JoinWindowsOf("+short(w.before)+", "+short(w.after)+")", w.grace)
}

// WindowFor returns the closed interval [ts - before, ts + after] of
// other-side timestamps that a record at ts matches (saturating at the ends
// of the int64 range).
func (w JoinWindows) WindowFor(ts int64) Window {
	return Window{Start: add(ts, -ms(w.before)), End: add(ts, ms(w.after))}
}

// Reverse returns the same join seen from the other side: before and after
// swapped. A record at t on the left matches a right record at u when
// u is in JoinWindowsOf(before, after).WindowFor(t), exactly when t is in
// Reverse().WindowFor(u).
func (w JoinWindows) Reverse() JoinWindows {
	w.before, w.after = w.after, w.before
	return w
}

// CloseTime is the stream time at which the join window win of a record
// closes: win.End + before + grace + 1 (saturating at math.MaxInt64), which
// for the window of a record at t is t + before + after + grace + 1.
//
// From then on every other-side record that falls in win is late: such a
// record at u ≤ win.End is itself late once stream time passes u + before
// + grace, since the join seen from its side (see Reverse) has "after" =
// before. So a left or outer join emits a record's non-match at
// CloseTime, and a non-match is never followed by a match of the same
// record. Kafka Streams emits non-matches earlier, once stream time passes
// t + after + grace, and a record of the other side that is still on time
// by its own bound can then match a record whose non-match is out; Kappa
// waits the "before" bound longer so that cannot happen. With a negative
// before, a record may arrive on time with its window already closed: its
// non-match, if it finds no match among the records kept, is emitted at
// once.
func (w JoinWindows) CloseTime(win Window) int64 {
	return add(add(add(win.End, ms(w.before)), ms(w.grace)), 1)
}

// Closed reports whether the join window win of a record (see WindowFor) is
// closed at streamTime: streamTime ≥ CloseTime(win), from which no record
// of the other side can still match the record.
func (w JoinWindows) Closed(win Window, streamTime int64) bool {
	return streamTime >= w.CloseTime(win)
}
