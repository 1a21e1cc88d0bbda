package window

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Window is an interval of event time, in Unix milliseconds.
//
// Whether End belongs to the window depends on the definition that made it:
// [TimeWindows] make half-open windows [Start, End); [SlidingWindows],
// [SessionWindows] and [JoinWindows] make closed windows [Start, End].
type Window struct {
	Start, End int64
}

// StartTime returns Start as a time in UTC.
func (w Window) StartTime() time.Time { return time.UnixMilli(w.Start).UTC() }

// EndTime returns End as a time in UTC.
func (w Window) EndTime() time.Time { return time.UnixMilli(w.End).UTC() }

// String formats the window as an ISO 8601 interval in UTC, for example
// "2024-05-01T10:00:00Z/2024-05-01T10:01:00Z". Milliseconds are shown only
// when they are not zero.
func (w Window) String() string {
	return formatTime(w.Start) + "/" + formatTime(w.End)
}

func formatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.999Z07:00")
}

// Windowed is the key of a windowed aggregation's result: the record key and
// the window the result belongs to. Encode it with codec.Windowed.
type Windowed[K any] struct {
	Key    K
	Window Window
}

// String formats the key as "[key@start/end]", like Kafka Streams' Windowed.
func (w Windowed[K]) String() string { return fmt.Sprintf("[%v@%v]", w.Key, w.Window) }

// Windows is a window definition that a grouped stream can be windowed by:
// [TimeWindows], [SlidingWindows] or [SessionWindows]. The set is closed;
// other packages cannot implement it.
type Windows interface {
	// GracePeriod is how long after a window ends it still accepts
	// out-of-order records. It is 0 unless set with Grace.
	GracePeriod() time.Duration
	// Retention is the default retention of the store that holds the windows:
	// how long, behind stream time, a window's data must be kept.
	Retention() time.Duration
	// Validate reports every problem with the definition, joined, each
	// wrapping [ErrInvalid]; nil if the definition is usable.
	Validate() error
	// String describes the definition the way it is written in Go, for
	// example "Tumbling(1m).Grace(10s)".
	String() string
	// CloseTime is the smallest stream time at which win is closed.
	CloseTime(win Window) int64
	// Closed reports whether win is closed at streamTime, that is
	// streamTime >= CloseTime(win). A closed window accepts no more records
	// and its result is final.
	Closed(win Window, streamTime int64) bool

	windows()
}

// ErrInvalid is wrapped by every error that Validate returns.
var ErrInvalid = errors.New("window: invalid window definition")

type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }

// problems collects Validate errors for one definition.
type problems struct {
	def  string
	errs []error
}

func (p *problems) addf(format string, args ...any) {
	p.errs = append(p.errs, &invalidError{msg: "window: " + p.def + ": " + fmt.Sprintf(format, args...)})
}

// positive checks a duration that must be > 0 and whole milliseconds.
func (p *problems) positive(field string, d time.Duration, fix string) {
	if d <= 0 {
		p.addf("%s %v must be positive; %s", field, d, fix)
		return
	}
	p.millis(field, d)
}

// nonNegative checks a duration that must be >= 0 and whole milliseconds.
func (p *problems) nonNegative(field string, d time.Duration, fix string) {
	if d < 0 {
		p.addf("%s %v must not be negative; %s", field, d, fix)
		return
	}
	p.millis(field, d)
}

func (p *problems) millis(field string, d time.Duration) {
	if d%time.Millisecond != 0 {
		p.addf("%s %v is not a whole number of milliseconds; use a multiple of time.Millisecond", field, d)
	}
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// ms converts a duration to whole milliseconds, truncating; Validate reports
// durations that are not whole milliseconds.
func ms(d time.Duration) int64 { return int64(d / time.Millisecond) }

// add returns a+b, saturating at math.MinInt64 and math.MaxInt64 instead of
// wrapping, so timestamps near the ends of the int64 range never overflow.
func add(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	if b < 0 && a < math.MinInt64-b {
		return math.MinInt64
	}
	return a + b
}

// addDur is add for durations.
func addDur(a, b time.Duration) time.Duration { return time.Duration(add(int64(a), int64(b))) }

// short formats a duration without trailing zero units: "1m" rather than
// "1m0s", "2h" rather than "2h0m0s".
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// withGrace appends ".Grace(d)" to a definition when d is not zero.
func withGrace(def string, grace time.Duration) string {
	if grace == 0 {
		return def
	}
	return def + ".Grace(" + short(grace) + ")"
}
