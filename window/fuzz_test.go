package window_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/window"
)

// FuzzWindowsFor checks WindowsFor against a brute-force enumeration of the
// aligned window starts in (ts-size, ts], for random sizes, advances and
// timestamps (negative and near math.MaxInt64 included).
func FuzzWindowsFor(f *testing.F) {
	f.Add(uint16(60_000), uint16(60_000), int64(0))
	f.Add(uint16(60_000), uint16(20_000), int64(59_999))
	f.Add(uint16(60_000), uint16(20_000), int64(60_000))
	f.Add(uint16(50), uint16(20), int64(60))
	f.Add(uint16(50), uint16(20), int64(1_700_000_000_069))
	f.Add(uint16(3), uint16(1), int64(2))
	f.Add(uint16(1), uint16(1), int64(math.MaxInt64))
	f.Add(uint16(7), uint16(3), int64(math.MaxInt64-1))
	f.Add(uint16(7), uint16(3), int64(-1))
	f.Add(uint16(7), uint16(3), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, sizeRaw, advRaw uint16, ts int64) {
		size := 1 + int64(sizeRaw)%2000
		adv := 1 + int64(advRaw)%size
		grace := int64(advRaw % 100)
		tw := window.Hopping(time.Duration(size)*time.Millisecond, time.Duration(adv)*time.Millisecond).
			Grace(time.Duration(grace) * time.Millisecond)
		if err := tw.Validate(); err != nil {
			t.Fatalf("%v: %v", tw, err)
		}
		got := tw.WindowsFor(ts)

		// Brute force: every s in (ts-size, ts] with s ≥ 0 and s % adv == 0.
		var want []int64
		for i := range size {
			if s := ts - i; s >= 0 && s <= ts && s%adv == 0 {
				want = append(want, s)
			}
		}
		slices.Reverse(want)
		if len(got) != len(want) {
			t.Fatalf("%v.WindowsFor(%d): got %d windows %v, want starts %v", tw, ts, len(got), got, want)
		}
		for i, win := range got {
			if win.Start != want[i] {
				t.Fatalf("%v.WindowsFor(%d): window %d starts at %d, want %d", tw, ts, i, win.Start, want[i])
			}
			if win.Start < 0 || win.Start%adv != 0 {
				t.Fatalf("window %v: start not a non-negative multiple of %d", win, adv)
			}
			if i > 0 && win.Start <= got[i-1].Start {
				t.Fatalf("windows not strictly ascending: %v", got)
			}
			saturated := win.Start > math.MaxInt64-size
			switch {
			case saturated && win.End != math.MaxInt64:
				t.Fatalf("window %v: end should saturate at MaxInt64", win)
			case !saturated && win.End-win.Start != size:
				t.Fatalf("window %v: end - start = %d, want %d", win, win.End-win.Start, size)
			}
			if win.Start > ts || (ts >= win.End && win.End != math.MaxInt64) {
				t.Fatalf("window [%d, %d) does not contain %d", win.Start, win.End, ts)
			}
			// A record is never late for its own windows while it is within
			// grace (away from the end of time, where close times saturate).
			if !saturated && win.End <= math.MaxInt64-grace && (tw.Closed(win, ts) || tw.Closed(win, ts+grace)) {
				t.Fatalf("window %v closed at stream time %d (grace %d)", win, ts, grace)
			}
		}
		// The allocation-free variant appends the same windows.
		prefix := []window.Window{{Start: -1, End: -1}}
		if app := tw.AppendWindowsFor(prefix, ts); !slices.Equal(app[1:], got) || app[0] != prefix[0] {
			t.Fatalf("AppendWindowsFor: got %v, want %v after %v", app, got, prefix)
		}
	})
}
