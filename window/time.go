package window

import (
	"slices"
	"time"
)

// TimeWindows defines fixed-size windows aligned to the Unix epoch, as Kafka
// Streams' TimeWindows: tumbling windows ([Tumbling]) follow each other
// without overlap; hopping windows ([Hopping]) start every advance and
// overlap when the advance is smaller than the size.
//
// Every window is the half-open interval [Start, End) with End = Start + size
// and Start a multiple of the advance (counted from 1970-01-01T00:00:00Z). A
// record at ts belongs to every such window with Start ≤ ts < End and
// Start ≥ 0: windows never start before the epoch, and a record with a
// negative timestamp belongs to no window.
//
// The zero value is not valid; build one with Tumbling or Hopping. A
// TimeWindows is a small comparable value, safe to copy and to share between
// goroutines.
type TimeWindows struct {
	size, advance, grace time.Duration
}

// Tumbling returns windows of the given size that do not overlap: every
// record belongs to exactly one, [ts - ts%size, ts - ts%size + size).
// The grace period is 0 unless set with [TimeWindows.Grace].
func Tumbling(size time.Duration) TimeWindows {
	return TimeWindows{size: size, advance: size}
}

// Hopping returns windows of the given size that start every advance. A
// record belongs to size/advance windows, rounded up or down (exactly that
// many when advance divides size). The grace period is 0 unless set with
// [TimeWindows.Grace].
func Hopping(size, advance time.Duration) TimeWindows {
	return TimeWindows{size: size, advance: advance}
}

// Grace returns a copy of w whose windows accept out-of-order records until
// stream time reaches End + d. The default is 0: a window closes as soon as
// stream time reaches its End.
func (w TimeWindows) Grace(d time.Duration) TimeWindows {
	w.grace = d
	return w
}

// Size is the length of every window.
func (w TimeWindows) Size() time.Duration { return w.size }

// Advance is the distance between the starts of consecutive windows; it
// equals Size for tumbling windows.
func (w TimeWindows) Advance() time.Duration { return w.advance }

// GracePeriod is the grace period set with Grace, 0 by default.
func (w TimeWindows) GracePeriod() time.Duration { return w.grace }

// Retention is size + grace, the default retention of a window store: a
// window store keys windows by Start, and a window starting at s is closed,
// and never read again, once stream time reaches s + size + grace.
func (w TimeWindows) Retention() time.Duration { return addDur(w.size, w.grace) }

// Validate reports every problem with w, joined; each error wraps
// [ErrInvalid] and says how to fix it. Size must be positive, the advance
// must be positive and at most the size, the grace period must not be
// negative, and all three must be whole milliseconds.
func (w TimeWindows) Validate() error {
	p := problems{def: w.String()}
	p.positive("size", w.size, "use a size > 0 (build windows with Tumbling or Hopping)")
	switch {
	case w.advance == w.size:
		// Tumbling: the size check covers the advance.
	case w.advance > w.size && w.size > 0:
		p.addf("advance %v exceeds size %v; use an advance ≤ size", w.advance, w.size)
	default:
		p.positive("advance", w.advance, "use an advance > 0")
	}
	p.nonNegative("grace", w.grace, "use a grace ≥ 0")
	return p.err()
}

// String describes w as Go code: "Tumbling(1m)", "Hopping(5m, 1m)", with
// ".Grace(10s)" appended when a grace period is set.
func (w TimeWindows) String() string {
	def := "Tumbling(" + short(w.size) + ")"
	if w.advance != w.size {
		def = "Hopping(" + short(w.size) + ", " + short(w.advance) + ")"
	}
	return withGrace(def, w.grace)
}

// WindowsFor returns the windows that contain a record at ts (Unix ms), in
// ascending order of Start: every [s, s+size) with s a multiple of the
// advance, s ≥ 0 and ts-size < s ≤ ts. It returns nil when ts is negative or
// w is not valid.
//
// End saturates at math.MaxInt64 for windows that would end past it (years
// after 292 million AD), instead of overflowing.
func (w TimeWindows) WindowsFor(ts int64) []Window {
	return w.AppendWindowsFor(nil, ts)
}

// AppendWindowsFor appends the windows of [TimeWindows.WindowsFor] to dst and
// returns the extended slice. It allocates only when dst lacks room, so a
// caller that reuses dst[:0] across records allocates nothing per record.
func (w TimeWindows) AppendWindowsFor(dst []Window, ts int64) []Window {
	size, adv := ms(w.size), ms(w.advance)
	if ts < 0 || size <= 0 || adv <= 0 || adv > size {
		return dst
	}
	// The first window is the one with the smallest aligned start > ts-size;
	// ts-size+adv cannot overflow since ts ≥ 0 and adv ≤ size.
	lo := max(ts-size+adv, 0)
	first := lo - lo%adv
	last := ts - ts%adv
	n := int((last-first)/adv) + 1
	dst = slices.Grow(dst, n)
	for i := range n {
		start := first + int64(i)*adv
		dst = append(dst, Window{Start: start, End: add(start, size)})
	}
	return dst
}

// CloseTime is the stream time at which win closes: win.End + grace
// (saturating at math.MaxInt64).
func (w TimeWindows) CloseTime(win Window) int64 { return add(win.End, ms(w.grace)) }

// Closed reports whether win is closed at streamTime: streamTime ≥ win.End +
// grace. End is exclusive, so with no grace the window [0, 60000) closes when
// stream time reaches 60000.
//
// Stream time is the largest record timestamp the task has seen, including
// the record being processed. A record at ts is late for each window of
// WindowsFor(ts) that is closed: it is not added to those windows (for
// hopping windows it may still be added to others that are open). A record
// never closes its own windows, since ts < End.
func (w TimeWindows) Closed(win Window, streamTime int64) bool {
	return streamTime >= w.CloseTime(win)
}

func (TimeWindows) windows() {}
