package window_test

import (
	"fmt"
	"time"

	"github.com/kappa-streams/kappa/window"
)

// at returns the Unix ms of a time of day on 2024-05-01, UTC.
func at(hour, minute, second int) int64 {
	return time.Date(2024, 5, 1, hour, minute, second, 0, time.UTC).UnixMilli()
}

// A tumbling window of one minute holds every record of that minute.
func Example_tumbling() {
	w := window.Tumbling(time.Minute)
	fmt.Println(w.WindowsFor(at(10, 0, 30)))
	fmt.Println(w.WindowsFor(at(10, 1, 0))) // the end is exclusive: 10:01:00 starts the next window
	// Output:
	// [2024-05-01T10:00:00Z/2024-05-01T10:01:00Z]
	// [2024-05-01T10:01:00Z/2024-05-01T10:02:00Z]
}

// Hopping windows of one minute every 20 seconds: a record belongs to three.
func Example_hopping() {
	w := window.Hopping(time.Minute, 20*time.Second)
	for _, win := range w.WindowsFor(at(10, 0, 30)) {
		fmt.Println(win)
	}
	// Output:
	// 2024-05-01T09:59:40Z/2024-05-01T10:00:40Z
	// 2024-05-01T10:00:00Z/2024-05-01T10:01:00Z
	// 2024-05-01T10:00:20Z/2024-05-01T10:01:20Z
}

// A sliding window's end is inclusive: a window ending at 10:00:10 still
// takes a record at 10:00:10, and closes when stream time passes its end
// plus grace.
func Example_sliding() {
	w := window.Sliding(10 * time.Second).Grace(2 * time.Second)
	win := window.Window{Start: at(10, 0, 0), End: at(10, 0, 10)}
	fmt.Println(w.Closed(win, at(10, 0, 12)))
	fmt.Println(w.Closed(win, at(10, 0, 12)+1))
	// Output:
	// false
	// true
}

// Two sessions of one user, eight minutes apart, merge into one when an
// out-of-order click arrives between them, within the five-minute gap of
// both. The merged session closes when stream time passes its end + gap +
// grace.
func Example_session() {
	w := window.Session(5 * time.Minute).Grace(5 * time.Minute)
	sessions := []window.Window{
		{Start: at(10, 0, 0), End: at(10, 2, 0)},
		{Start: at(10, 10, 0), End: at(10, 12, 0)},
	}
	streamTime := at(10, 12, 0)
	click := at(10, 6, 0) // arrives late, but bridges the two sessions
	merged, late := w.Merge(click, sessions, streamTime)
	fmt.Println(merged, late)
	fmt.Println(w.Closed(merged, at(10, 22, 0)), w.Closed(merged, at(10, 22, 0)+1))
	// Output:
	// 2024-05-01T10:00:00Z/2024-05-01T10:12:00Z false
	// false true
}

// With ten seconds of grace, a record for the window 10:00–10:01 is accepted
// until stream time reaches 10:01:10, and late from then on.
func Example_grace() {
	w := window.Tumbling(time.Minute).Grace(10 * time.Second)
	record := at(10, 0, 59)
	win := w.WindowsFor(record)[0]
	for _, streamTime := range []int64{at(10, 1, 5), at(10, 1, 10)} {
		fmt.Printf("stream time %s: late %v\n", time.UnixMilli(streamTime).UTC().Format(time.TimeOnly), w.Closed(win, streamTime))
	}
	// Output:
	// stream time 10:01:05: late false
	// stream time 10:01:10: late true
}

// Validate names the field and the fix.
func ExampleTimeWindows_Validate() {
	fmt.Println(window.Hopping(time.Minute, 2*time.Minute).Validate())
	// Output:
	// window: Hopping(1m, 2m): advance 2m0s exceeds size 1m0s; use an advance ≤ size
}

// A record at t joins the other side's records in [t - before, t + after].
func ExampleJoinWindows_WindowFor() {
	w := window.JoinWindowsOf(5*time.Second, 10*time.Second)
	fmt.Println(w.WindowFor(at(10, 0, 0)))
	fmt.Println(w.Reverse().WindowFor(at(10, 0, 0))) // seen from the other side
	// Output:
	// 2024-05-01T09:59:55Z/2024-05-01T10:00:10Z
	// 2024-05-01T09:59:50Z/2024-05-01T10:00:05Z
}
