package window

import "time"

// SlidingWindows defines windows of a maximum time difference between
// records, as Kafka Streams' SlidingWindows: two records share a window
// exactly when their timestamps differ by at most the time difference d.
//
// Windows are the closed intervals [Start, End] with End = Start + d, both
// ends inclusive. Unlike hopping windows they are aligned to records, not to
// the epoch, and exist only where records are: a record at t defines the
// window ending at it, [t-d, t], and, once a later record falls within d
// after it, the window starting just after it, [t+1, t+1+d]. Each distinct
// set of records that fit within d of each other is therefore aggregated in
// exactly one window, and empty windows are never emitted. As in Kafka
// Streams, windows never start before 0: records with t < d share the
// window [0, d].
//
// The zero value is a valid definition with d = 0 (a window per distinct
// timestamp); build one with [Sliding].
type SlidingWindows struct {
	diff, grace time.Duration
}

// Sliding returns sliding windows of the given maximum time difference
// between records. The grace period is 0 unless set with
// [SlidingWindows.Grace].
func Sliding(maxDiff time.Duration) SlidingWindows {
	return SlidingWindows{diff: maxDiff}
}

// Grace returns a copy of w whose windows accept out-of-order records while
// stream time is at most End + d. The default is 0.
func (w SlidingWindows) Grace(d time.Duration) SlidingWindows {
	w.grace = d
	return w
}

// TimeDifference is the maximum time difference between two records of one
// window, and End - Start of every window.
func (w SlidingWindows) TimeDifference() time.Duration { return w.diff }

// GracePeriod is the grace period set with Grace, 0 by default.
func (w SlidingWindows) GracePeriod() time.Duration { return w.grace }

// Retention is 2 × time difference + grace, the default retention of the
// window store, as in Kafka Streams. A window only needs d + grace to close,
// but the aggregation of a record at t reads windows that start as early as
// t - 2d, to find the aggregate of the records before it.
func (w SlidingWindows) Retention() time.Duration {
	return addDur(addDur(w.diff, w.diff), w.grace)
}

// Validate reports every problem with w, joined; each error wraps
// [ErrInvalid] and says how to fix it. The time difference and the grace
// period must not be negative and must be whole milliseconds.
func (w SlidingWindows) Validate() error {
	p := problems{def: w.String()}
	p.nonNegative("time difference", w.diff, "use a maximum time difference ≥ 0")
	p.nonNegative("grace", w.grace, "use a grace ≥ 0")
	return p.err()
}

// String describes w as Go code: "Sliding(10s)", with ".Grace(1s)"
// appended when a grace period is set.
func (w SlidingWindows) String() string {
	return withGrace("Sliding("+short(w.diff)+")", w.grace)
}

// CloseTime is the stream time at which win closes: win.End + 1 + grace
// (saturating at math.MaxInt64).
func (w SlidingWindows) CloseTime(win Window) int64 {
	return add(add(win.End, 1), ms(w.grace))
}

// Closed reports whether win is closed at streamTime: streamTime > win.End +
// grace, that is streamTime ≥ win.End + 1 + grace. End is inclusive, so with
// no grace the window [0, 10000] still accepts a record at 10000 and closes
// when stream time reaches 10001.
//
// Stream time is the largest record timestamp the task has seen, including
// the record being processed. A record at t is not added to the windows that
// contain it and are closed; it is late, and dropped, when every window that
// could contain it is closed, which is when streamTime > t + d + grace. A
// record never closes a window that contains it, since t ≤ End.
func (w SlidingWindows) Closed(win Window, streamTime int64) bool {
	return streamTime >= w.CloseTime(win)
}

func (SlidingWindows) windows() {}
