// Package window defines windows of event time and the arithmetic of
// assigning records to them and closing them, following Kafka Streams.
//
// It holds no state and runs nothing: the stream DSL's windowed operators and
// the window and session stores use it to decide which windows a record
// belongs to, when a window is final, which records are late and how long
// to keep data. It imports only the standard library.
//
// # Time
//
// Times are Unix milliseconds in an int64, like Kafka record timestamps.
// Durations are [time.Duration] values that must be whole milliseconds;
// Validate reports any that are not.
//
// Stream time is kept per task: the largest record timestamp the task has
// seen, including the record being processed. It never goes backwards, and
// it survives restarts (it is committed with the task's offsets). Windows
// close by stream time, never by the wall clock.
//
// # Definitions
//
//   - [Tumbling] and [Hopping] make [TimeWindows]: fixed-size windows aligned
//     to the epoch, half-open [Start, End). A record belongs to every window
//     that contains it ([TimeWindows.WindowsFor]).
//   - [Sliding] makes [SlidingWindows]: windows of a maximum time difference
//     between records, aligned to records, closed [Start, End].
//   - [Session] makes [SessionWindows]: sessions of activity separated by an
//     inactivity gap, closed [first, last], merged when a record falls
//     within the gap of them ([SessionWindows.Merges], [SessionWindows.Merge]).
//   - [JoinWindowsOf] makes [JoinWindows], the time bounds of a
//     stream-stream join.
//
// The first three implement [Windows], which is what a windowed aggregation
// takes. Each definition is a small comparable value with a Grace method
// that returns a modified copy, and a Validate method that reports every
// problem at once. A windowed result is keyed by [Windowed], the record key
// with its [Window].
//
// # Closing and grace
//
// A window is closed once stream time reaches its CloseTime; from then on it
// accepts no records and its result is final. The grace period, 0 unless set,
// keeps a window open for out-of-order records after it ends:
//
//	TimeWindows     closed when streamTime ≥ End + grace        (End exclusive)
//	SlidingWindows  closed when streamTime > End + grace        (End inclusive)
//	SessionWindows  closed when streamTime > End + gap + grace  (End inclusive)
//	JoinWindows     closed when streamTime > End + grace        (End inclusive)
//
// A record is late exactly when the windows it would update are closed: it
// is dropped from them (and counted) instead of changing a final result. A
// record never closes a window it belongs to, and a record no more than grace
// behind stream time is never late.
//
// # Retention
//
// Each definition's Retention is the default retention of the store that
// holds its windows: size + grace for time windows, 2 × time difference +
// grace for sliding windows, gap + grace for sessions, before + after +
// grace for joins.
//
// # Example
//
//	w := window.Hopping(time.Minute, 20*time.Second).Grace(10 * time.Second)
//	if err := w.Validate(); err != nil {
//		return err
//	}
//	for _, win := range w.WindowsFor(ts) { // three windows, ascending
//		if !w.Closed(win, streamTime) {
//			// add the record to win
//		}
//	}
package window
