package window_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/window"
)

func equal[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// w makes a window from [start, end) or [start, end] in ms.
func w(start, end int64) window.Window { return window.Window{Start: start, End: end} }

func TestWindowsFor(t *testing.T) {
	const minute = 60_000
	tumbling := window.Tumbling(time.Minute)
	hopping := window.Hopping(time.Minute, 20*time.Second)
	uneven := window.Hopping(50*time.Millisecond, 20*time.Millisecond) // size not a multiple of advance
	tests := []struct {
		name string
		w    window.TimeWindows
		ts   int64
		want []window.Window
	}{
		{"tumbling/zero", tumbling, 0, []window.Window{w(0, minute)}},
		{"tumbling/before boundary", tumbling, minute - 1, []window.Window{w(0, minute)}},
		{"tumbling/on boundary", tumbling, minute, []window.Window{w(minute, 2*minute)}},
		{"tumbling/after boundary", tumbling, minute + 1, []window.Window{w(minute, 2*minute)}},
		{"tumbling/recent", tumbling, 1_700_000_012_345, []window.Window{w(1_699_999_980_000, 1_700_000_040_000)}},
		{"tumbling/negative", tumbling, -1, nil},
		{"hopping/zero", hopping, 0, []window.Window{w(0, minute)}},
		{"hopping/before first boundary", hopping, 19_999, []window.Window{w(0, minute)}},
		{"hopping/on first boundary", hopping, 20_000, []window.Window{w(0, minute), w(20_000, 80_000)}},
		{"hopping/before boundary", hopping, minute - 1, []window.Window{w(0, minute), w(20_000, 80_000), w(40_000, 100_000)}},
		{"hopping/on boundary", hopping, minute, []window.Window{w(20_000, 80_000), w(40_000, 100_000), w(minute, 120_000)}},
		{"hopping/later", hopping, 100_000, []window.Window{w(60_000, 120_000), w(80_000, 140_000), w(100_000, 160_000)}},
		{"hopping/negative", hopping, -20_000, nil},
		{"uneven/zero", uneven, 0, []window.Window{w(0, 50)}},
		{"uneven/3 windows", uneven, 45, []window.Window{w(0, 50), w(20, 70), w(40, 90)}},
		{"uneven/on end of first", uneven, 50, []window.Window{w(20, 70), w(40, 90)}},
		{"uneven/before boundary", uneven, 59, []window.Window{w(20, 70), w(40, 90)}},
		{"uneven/on boundary", uneven, 60, []window.Window{w(20, 70), w(40, 90), w(60, 110)}},
		{"uneven/before end", uneven, 69, []window.Window{w(20, 70), w(40, 90), w(60, 110)}},
		{"uneven/on end", uneven, 70, []window.Window{w(40, 90), w(60, 110)}},
		{"advance 1ms", window.Hopping(3*time.Millisecond, time.Millisecond), 5, []window.Window{w(3, 6), w(4, 7), w(5, 8)}},
		{"end saturates", tumbling, math.MaxInt64, []window.Window{w(math.MaxInt64-math.MaxInt64%minute, math.MaxInt64)}},
		{"invalid/zero value", window.TimeWindows{}, 10, nil},
		{"invalid/advance > size", window.Hopping(time.Second, time.Minute), 10, nil},
		{"invalid/sub-ms advance", window.Hopping(time.Second, time.Microsecond), 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.WindowsFor(tt.ts); !slices.Equal(got, tt.want) {
				t.Fatalf("%v.WindowsFor(%d):\n got %v\nwant %v", tt.w, tt.ts, got, tt.want)
			}
		})
	}
}

func TestAppendWindowsForDoesNotAllocate(t *testing.T) {
	hw := window.Hopping(time.Minute, 10*time.Second)
	dst := make([]window.Window, 0, 8)
	ts := int64(1_700_000_000_000)
	allocs := testing.AllocsPerRun(100, func() {
		dst = hw.AppendWindowsFor(dst[:0], ts)
		ts += 997
	})
	if allocs != 0 {
		t.Fatalf("AppendWindowsFor allocated %v times per call, want 0", allocs)
	}
	if len(dst) != 6 {
		t.Fatalf("got %d windows, want 6", len(dst))
	}
	// Appending keeps what dst held.
	got := hw.AppendWindowsFor([]window.Window{w(1, 2)}, 0)
	if want := []window.Window{w(1, 2), w(0, 60_000)}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		w    interface{ Validate() error }
		want []string // one substring per expected error, in order; nil: valid
	}{
		{"tumbling", window.Tumbling(time.Minute).Grace(10 * time.Second), nil},
		{"hopping", window.Hopping(time.Minute, 20*time.Second), nil},
		{"hopping equal", window.Hopping(time.Minute, time.Minute), nil},
		{"advance > size", window.Hopping(time.Minute, 2*time.Minute),
			[]string{"window: Hopping(1m, 2m): advance 2m0s exceeds size 1m0s; use an advance ≤ size"}},
		{"zero value", window.TimeWindows{},
			[]string{"window: Tumbling(0s): size 0s must be positive; use a size > 0 (build windows with Tumbling or Hopping)"}},
		{"negative size", window.Tumbling(-time.Minute), []string{"size -1m0s must be positive"}},
		{"zero advance", window.Hopping(time.Minute, 0), []string{"window: Hopping(1m, 0s): advance 0s must be positive; use an advance > 0"}},
		{"negative advance", window.Hopping(time.Minute, -time.Second), []string{"advance -1s must be positive"}},
		{"sub-ms size", window.Tumbling(1500 * time.Microsecond),
			[]string{"window: Tumbling(1.5ms): size 1.5ms is not a whole number of milliseconds; use a multiple of time.Millisecond"}},
		{"sub-ms advance", window.Hopping(time.Second, 1500*time.Microsecond), []string{"advance 1.5ms is not a whole number of milliseconds"}},
		{"negative grace", window.Tumbling(time.Minute).Grace(-time.Second),
			[]string{"window: Tumbling(1m).Grace(-1s): grace -1s must not be negative; use a grace ≥ 0"}},
		{"sub-ms grace", window.Tumbling(time.Minute).Grace(time.Microsecond), []string{"grace 1µs is not a whole number of milliseconds"}},
		{"every problem", window.Hopping(1500*time.Microsecond, 0).Grace(-time.Second),
			[]string{"size 1.5ms is not a whole number", "advance 0s must be positive", "grace -1s must not be negative"}},

		{"sliding", window.Sliding(10 * time.Second).Grace(time.Second), nil},
		{"sliding zero", window.Sliding(0), nil},
		{"sliding negative", window.Sliding(-time.Second),
			[]string{"window: Sliding(-1s): time difference -1s must not be negative; use a maximum time difference ≥ 0"}},
		{"sliding sub-ms", window.Sliding(time.Microsecond), []string{"time difference 1µs is not a whole number of milliseconds"}},
		{"sliding grace", window.Sliding(time.Second).Grace(-time.Millisecond), []string{"window: Sliding(1s).Grace(-1ms): grace -1ms must not be negative"}},

		{"session", window.Session(30 * time.Minute).Grace(time.Minute), nil},
		{"session zero", window.Session(0),
			[]string{"window: Session(0s): inactivity gap 0s must be positive; use a gap > 0 (build windows with Session)"}},
		{"session negative", window.Session(-time.Second), []string{"inactivity gap -1s must be positive"}},
		{"session sub-ms", window.Session(time.Nanosecond), []string{"inactivity gap 1ns is not a whole number of milliseconds"}},
		{"session grace", window.Session(time.Second).Grace(-time.Second).Grace(-2 * time.Second), []string{"grace -2s must not be negative"}},

		{"join", window.JoinWindowsOf(5*time.Second, 5*time.Second).Grace(time.Second), nil},
		{"join negative before", window.JoinWindowsOf(-time.Second, 5*time.Second), nil},
		{"join point", window.JoinWindowsOf(0, 0), nil},
		{"join empty", window.JoinWindowsOf(-5*time.Second, 2*time.Second),
			[]string{"window: JoinWindowsOf(-5s, 2s): before -5s + after 2s is negative, so no record matches; use before + after ≥ 0"}},
		{"join sub-ms", window.JoinWindowsOf(1500*time.Microsecond, time.Nanosecond),
			[]string{"before 1.5ms is not a whole number", "after 1ns is not a whole number"}},
		{"join grace", window.JoinWindowsOf(time.Second, time.Second).Grace(-time.Second), []string{"grace -1s must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.w.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if !errors.Is(err, window.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.Contains(lines[i], want) {
					t.Errorf("error %d: got %q, want it to contain %q", i, lines[i], want)
				}
				if !strings.HasPrefix(lines[i], "window: ") {
					t.Errorf("error %d: %q lacks the package prefix", i, lines[i])
				}
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		got  interface{ String() string }
		want string
	}{
		{window.Tumbling(time.Minute), "Tumbling(1m)"},
		{window.Tumbling(time.Hour).Grace(10 * time.Second), "Tumbling(1h).Grace(10s)"},
		{window.Hopping(5*time.Minute, 90*time.Second), "Hopping(5m, 1m30s)"},
		{window.Sliding(10 * time.Second), "Sliding(10s)"},
		{window.Session(30 * time.Minute).Grace(time.Minute), "Session(30m).Grace(1m)"},
		{window.JoinWindowsOf(5*time.Second, 0), "JoinWindowsOf(5s, 0s)"},
		{w(0, 60_000), "1970-01-01T00:00:00Z/1970-01-01T00:01:00Z"},
		{w(1_714_557_600_250, 1_714_557_660_000), "2024-05-01T10:00:00.25Z/2024-05-01T10:01:00Z"},
		{window.Windowed[string]{Key: "alice", Window: w(0, 1000)}, "[alice@1970-01-01T00:00:00Z/1970-01-01T00:00:01Z]"},
	}
	for _, tt := range tests {
		equal(t, "String", tt.got.String(), tt.want)
	}
}

func TestAccessors(t *testing.T) {
	tw := window.Hopping(time.Minute, 20*time.Second).Grace(10 * time.Second)
	equal(t, "Size", tw.Size(), time.Minute)
	equal(t, "Advance", tw.Advance(), 20*time.Second)
	equal(t, "GracePeriod", tw.GracePeriod(), 10*time.Second)
	equal(t, "Retention", tw.Retention(), 70*time.Second)
	equal(t, "Tumbling advance", window.Tumbling(time.Minute).Advance(), time.Minute)
	equal(t, "default grace", window.Tumbling(time.Minute).GracePeriod(), 0)

	sw := window.Sliding(10 * time.Second).Grace(time.Second)
	equal(t, "TimeDifference", sw.TimeDifference(), 10*time.Second)
	equal(t, "sliding GracePeriod", sw.GracePeriod(), time.Second)
	equal(t, "sliding Retention", sw.Retention(), 21*time.Second)

	ss := window.Session(5 * time.Minute).Grace(30 * time.Second)
	equal(t, "Gap", ss.Gap(), 5*time.Minute)
	equal(t, "session GracePeriod", ss.GracePeriod(), 30*time.Second)
	equal(t, "session Retention", ss.Retention(), 330*time.Second)

	jw := window.JoinWindowsOf(2*time.Second, 3*time.Second).Grace(time.Second)
	equal(t, "Before", jw.Before(), 2*time.Second)
	equal(t, "After", jw.After(), 3*time.Second)
	equal(t, "join GracePeriod", jw.GracePeriod(), time.Second)
	equal(t, "join Retention", jw.Retention(), 6*time.Second)
	equal(t, "WindowFor", jw.WindowFor(10_000), w(8_000, 13_000))
	equal(t, "Reverse", jw.Reverse().WindowFor(10_000), w(7_000, 12_000))

	// Grace returns a copy.
	base := window.Tumbling(time.Minute)
	_ = base.Grace(time.Hour)
	equal(t, "Grace copies", base.GracePeriod(), 0)

	// Retention saturates instead of overflowing.
	huge := time.Duration(math.MaxInt64 / 1_000_000 * 1_000_000)
	equal(t, "Retention saturates", window.Tumbling(huge).Grace(huge).Retention(), time.Duration(math.MaxInt64))

	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	win := w(start.UnixMilli(), start.Add(time.Minute).UnixMilli())
	equal(t, "StartTime", win.StartTime(), start)
	equal(t, "EndTime", win.EndTime(), start.Add(time.Minute))
}

func TestClosed(t *testing.T) {
	type closer interface {
		Closed(window.Window, int64) bool
		CloseTime(window.Window) int64
	}
	tests := []struct {
		name       string
		w          closer
		win        window.Window
		open, shut int64 // the last stream time at which win is open, the first at which it is closed
	}{
		// End exclusive: closed when stream time reaches End + grace.
		{"tumbling", window.Tumbling(time.Minute), w(0, 60_000), 59_999, 60_000},
		{"tumbling grace", window.Tumbling(time.Minute).Grace(10 * time.Second), w(0, 60_000), 69_999, 70_000},
		{"hopping grace", window.Hopping(time.Minute, 20*time.Second).Grace(time.Second), w(20_000, 80_000), 80_999, 81_000},
		// End inclusive: closed when stream time passes End + grace.
		{"sliding", window.Sliding(10 * time.Second), w(0, 10_000), 10_000, 10_001},
		{"sliding grace", window.Sliding(10 * time.Second).Grace(5 * time.Second), w(5_000, 15_000), 20_000, 20_001},
		// Sessions: closed when stream time passes End + gap + grace.
		{"session", window.Session(10 * time.Second), w(0, 5_000), 15_000, 15_001},
		{"session point", window.Session(10 * time.Second), w(7, 7), 10_007, 10_008},
		{"session grace", window.Session(10 * time.Second).Grace(2 * time.Second), w(0, 5_000), 17_000, 17_001},
		// Join windows: closed when stream time passes End + before +
		// grace, when a record at End is late by its own bound (the
		// window of a record at 10000 is [5000, 15000]).
		{"join", window.JoinWindowsOf(5*time.Second, 5*time.Second), w(5_000, 15_000), 20_000, 20_001},
		{"join grace", window.JoinWindowsOf(5*time.Second, 5*time.Second).Grace(time.Second), w(5_000, 15_000), 21_000, 21_001},
		{"join negative before", window.JoinWindowsOf(-time.Second, 3*time.Second).Grace(time.Second), w(11_000, 13_000), 13_000, 13_001},
		// Saturation: a close time past MaxInt64 is MaxInt64.
		{"saturated", window.Tumbling(time.Minute).Grace(time.Hour), w(math.MaxInt64-60_000, math.MaxInt64-5), math.MaxInt64 - 1, math.MaxInt64},
		{"saturated session", window.Session(time.Minute), w(math.MaxInt64-5, math.MaxInt64-5), math.MaxInt64 - 1, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equal(t, "CloseTime", tt.w.CloseTime(tt.win), tt.shut)
			for _, st := range []int64{math.MinInt64, -1, tt.win.Start, tt.open} {
				if st <= tt.open && tt.w.Closed(tt.win, st) {
					t.Errorf("closed at stream time %d, want open until %d", st, tt.open)
				}
			}
			for _, st := range []int64{tt.shut, tt.shut + 1, math.MaxInt64} {
				if st >= tt.shut && !tt.w.Closed(tt.win, st) {
					t.Errorf("open at stream time %d, want closed from %d", st, tt.shut)
				}
			}
		})
	}
}

// A record no more than grace behind stream time is never late: every
// window it belongs to is open. In particular a record never closes its own
// windows (the case streamTime == ts).
func TestOnTimeRecordsAreNeverLate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		size := 1 + rng.Int64N(100)
		adv := 1 + rng.Int64N(size)
		grace := rng.Int64N(50)
		ts := rng.Int64N(10_000)
		st := ts + rng.Int64N(grace+1)
		tw := window.Hopping(time.Duration(size)*time.Millisecond, time.Duration(adv)*time.Millisecond).Grace(time.Duration(grace) * time.Millisecond)
		for _, win := range tw.WindowsFor(ts) {
			if tw.Closed(win, st) {
				t.Fatalf("%v: record at %d late for %v at stream time %d", tw, ts, win, st)
			}
		}
		d := rng.Int64N(100)
		sw := window.Sliding(time.Duration(d) * time.Millisecond).Grace(time.Duration(grace) * time.Millisecond)
		for start := ts - d; start <= ts; start++ { // every window [start, start+d] that contains ts
			if sw.Closed(w(start, start+d), st) {
				t.Fatalf("%v: record at %d late for [%d, %d] at stream time %d", sw, ts, start, start+d, st)
			}
		}
	}
}

func TestMerges(t *testing.T) {
	s := window.Session(10 * time.Second)
	tests := []struct {
		session window.Window
		ts      int64
		want    bool
	}{
		{w(20_000, 30_000), 25_000, true},  // inside
		{w(20_000, 30_000), 20_000, true},  // on the start
		{w(20_000, 30_000), 30_000, true},  // on the end
		{w(20_000, 30_000), 40_000, true},  // exactly gap after the end
		{w(20_000, 30_000), 40_001, false}, // gap + 1 ms after
		{w(20_000, 30_000), 10_000, true},  // exactly gap before the start
		{w(20_000, 30_000), 9_999, false},  // gap + 1 ms before
		{w(5, 5), 10_005, true},            // one-record session
		{w(5, 5), 10_006, false},
		{w(5, 5), -9_995, true},
		{w(math.MaxInt64, math.MaxInt64), math.MaxInt64, true}, // saturation, no overflow
		{w(math.MinInt64, math.MinInt64), math.MinInt64, true},
	}
	for _, tt := range tests {
		equal(t, "Merges("+tt.session.String()+", "+time.UnixMilli(tt.ts).UTC().String()+")", s.Merges(tt.session, tt.ts), tt.want)
	}
}

func TestMerge(t *testing.T) {
	gap10 := window.Session(10 * time.Millisecond) // a session [s, e] closes at stream time e + 11
	tests := []struct {
		name       string
		w          window.SessionWindows
		ts         int64
		sessions   []window.Window
		streamTime int64
		want       window.Window
		late       bool
	}{
		{"new session", gap10, 50, nil, 50, w(50, 50), false},
		{"in-order extension", gap10, 6, []window.Window{w(0, 5)}, 6, w(0, 6), false},
		{"extension at exactly gap", gap10, 15, []window.Window{w(0, 5)}, 15, w(0, 15), false},
		{"inside", gap10, 3, []window.Window{w(0, 5)}, 5, w(0, 5), false},
		{"inside, far behind", gap10, 50, []window.Window{w(0, 100)}, 105, w(0, 100), false},
		{"backwards extension", gap10.Grace(5 * time.Millisecond), 0, []window.Window{w(10, 12)}, 12, w(0, 12), false},
		{"backwards extension, too late", gap10, 0, []window.Window{w(10, 12)}, 12, w(0, 12), true},
		{"non-merging ignored", gap10.Grace(20 * time.Millisecond), 5, []window.Window{w(16, 20), w(-30, -6)}, 20, w(5, 5), false},
		{"bridge", gap10.Grace(5 * time.Millisecond), 8, []window.Window{w(0, 0), w(15, 15)}, 15, w(0, 15), false},
		// [0, 0] is closed from stream time 11 on: it is final and ignored.
		{"next to closed session", gap10, 5, []window.Window{w(0, 0)}, 11, w(5, 5), false},
		{"bridge next to closed session", gap10, 8, []window.Window{w(0, 0), w(15, 15)}, 15, w(8, 15), false},
		{"inside closed session", gap10, 3, []window.Window{w(0, 5), w(14, 20)}, 20, w(3, 3), true},
		{"next to closed session, late", gap10, 0, []window.Window{w(-10, -10)}, 11, w(0, 0), true},
		{"closed new session", gap10, 0, nil, 11, w(0, 0), true},
		{"open new session", gap10, 1, nil, 11, w(1, 1), false},
		{"grace keeps open", gap10.Grace(time.Millisecond), 5, []window.Window{w(0, 0)}, 11, w(0, 5), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, late := tt.w.Merge(tt.ts, tt.sessions, tt.streamTime)
			equal(t, "merged", got, tt.want)
			equal(t, "late", late, tt.late)
		})
	}
}

// Sessions built record by record with Merge, from seeded random
// out-of-order input: every record that is not late lies in exactly one
// session, sessions never change once closed, and when no record is more
// than grace behind stream time the sessions equal a brute-force
// sessionization of the sorted input.
func TestSessionsMatchBruteForce(t *testing.T) {
	lateTotal := 0
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 7))
		gap := 1 + rng.Int64N(20)
		maxDelay := rng.Int64N(40)
		grace := rng.Int64N(40)
		sw := window.Session(time.Duration(gap) * time.Millisecond).Grace(time.Duration(grace) * time.Millisecond)

		var sessions, closed []window.Window
		var kept []int64
		st := int64(math.MinInt64)
		now := int64(0)
		for range 300 {
			now += rng.Int64N(8)
			ts := max(0, now-rng.Int64N(maxDelay+1)) // out of order by up to maxDelay
			st = max(st, ts)
			merged, late := sw.Merge(ts, sessions, st)
			if late {
				lateTotal++
				if ts+grace >= st {
					t.Fatalf("seed %d: record at %d late at stream time %d despite grace %d", seed, ts, st, grace)
				}
				continue
			}
			kept = append(kept, ts)
			sessions = slices.DeleteFunc(sessions, func(s window.Window) bool {
				return sw.Merges(s, ts) && !sw.Closed(s, st)
			})
			sessions = append(sessions, merged)
			for _, s := range sessions {
				if sw.Closed(s, st) && !slices.Contains(closed, s) {
					closed = append(closed, s)
				}
			}
		}
		for i, a := range sessions {
			for _, b := range sessions[i+1:] {
				if a.Start <= b.End && b.Start <= a.End {
					t.Fatalf("seed %d: sessions %v and %v overlap", seed, a, b)
				}
			}
		}
		for _, c := range closed {
			if !slices.Contains(sessions, c) {
				t.Fatalf("seed %d: closed session %v changed", seed, c)
			}
		}
		for _, ts := range kept {
			n := 0
			for _, s := range sessions {
				if s.Start <= ts && ts <= s.End {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("seed %d: record at %d lies in %d sessions of %v", seed, ts, n, sessions)
			}
		}
		if maxDelay > grace {
			continue
		}
		if len(kept) != 300 {
			t.Fatalf("seed %d: %d records late with delay ≤ grace", seed, 300-len(kept))
		}
		// Brute force: sort the timestamps and cut where consecutive records
		// are more than gap apart.
		sort.Slice(kept, func(i, j int) bool { return kept[i] < kept[j] })
		var want []window.Window
		for _, ts := range kept {
			if n := len(want); n > 0 && ts-want[n-1].End <= gap {
				want[n-1].End = ts
				continue
			}
			want = append(want, w(ts, ts))
		}
		slices.SortFunc(sessions, func(a, b window.Window) int { return int(a.Start - b.Start) })
		if !slices.Equal(sessions, want) {
			t.Fatalf("seed %d (gap %d, grace %d, delay %d):\n got %v\nwant %v", seed, gap, grace, maxDelay, sessions, want)
		}
	}
	if lateTotal == 0 {
		t.Fatal("no record was late: the input does not exercise the late rule")
	}
	t.Logf("%d late records", lateTotal)
}

func TestWindowsInterface(t *testing.T) {
	for _, ws := range []window.Windows{
		window.Tumbling(time.Minute),
		window.Sliding(time.Minute),
		window.Session(time.Minute),
	} {
		if err := ws.Validate(); err != nil {
			t.Errorf("%v: %v", ws, err)
		}
	}
}
