package ksdiff_test

import (
	"fmt"
	"maps"
	"strconv"
)

// craftedCases are minimal inputs on which Kafka Streams 4.4 and Kappa
// differ, or agree where they once did not. Each names the difference and
// pins the final table of each side, so a difference that goes away (a new
// Kafka Streams, a change in Kappa) fails here and the documentation can
// follow. docs/design.md ("Checked against Kafka Streams 4.4") sums them up.
//
// Times are relative to t0; tumbling windows are 2 s with a grace of 1 s,
// sessions have a gap of 2 s and a grace of 1 s: a session closes when
// stream time passes its end by more than 3 s. Each input is one
// partition, so all its keys share one stream time.
func craftedCases() []*diffCase {
	at := func(key string, ms int64) in { return in{key: key, value: []byte("v"), ts: t0 + ms} }
	del := func(key string, ms int64) in { return in{key: key, ts: t0 + ms} }
	crafted := func(name string, kappa, ks kind, difference string, recs []in, wantKappa, wantKS map[string]string) *diffCase {
		return &diffCase{
			name: name, kappa: kappa, ks: ks, partitions: 1, inputs: 1, recs: withFlush(recs, 1), reading: asTable,
			difference: difference, wantKappa: wantKappa, wantKS: wantKS,
		}
	}
	// a@2000 is exactly gap after [0, 0] and, once b@3000 has moved stream
	// time to 3000 = 0 + gap + grace, exactly grace behind it: on time.
	atGraceLimit := []in{at("a", 0), at("b", 3000), at("a", 2000)}
	return []*diffCase{
		crafted("session-merge-at-grace-limit", session, session,
			"a record exactly gap after a session's end and exactly grace behind stream time (stream time = end + gap + grace) "+
				"is on time on both sides and joins the session in Kappa, which closes a session when stream time passes "+
				"end + gap + grace, the rule of Kafka Streams' own late-record check. Kafka Streams' session store, whose "+
				"retention is gap + grace, no longer returns the session at that stream time, so the record starts a session of its own",
			atGraceLimit,
			windows(w{"a", 0, 2000, 2}, w{"b", 3000, 3000, 1}),
			windows(w{"a", 0, 0, 1}, w{"a", 2000, 2000, 1}, w{"b", 3000, 3000, 1})),

		crafted("session-same-time-at-grace-limit", session, session,
			"the same limit, with a second record at the time of a one-record session: Kafka Streams does not find "+
				"the session, makes a new one with the same window and overwrites it, so the session counts 1 record of 2",
			[]in{at("a", 0), at("b", 3000), at("a", 0)},
			windows(w{"a", 0, 0, 2}, w{"b", 3000, 3000, 1}),
			windows(w{"a", 0, 0, 1}, w{"b", 3000, 3000, 1})),

		crafted("session-final-at-grace-limit", sessionFinal, sessionSuppress,
			"the same limit with final results: Kafka Streams' suppress(untilWindowCloses) emits [0, 0] at stream time "+
				"end + gap + grace, and the record that arrives then makes a second session; Kappa's EmitFinal emits the merged session",
			atGraceLimit,
			windows(w{"a", 0, 2000, 2}, w{"b", 3000, 3000, 1}),
			windows(w{"a", 0, 0, 1}, w{"a", 2000, 2000, 1}, w{"b", 3000, 3000, 1})),

		crafted("session-final-far-flush", sessionFinal, sessionFinal,
			"Kafka Streams' emitStrategy(onWindowClose) over sessions looks for the sessions a record closes after it has "+
				"stored the record, and a record that moves stream time past a store segment's retention has expired the "+
				"segment by then: the sessions it closes are never emitted. Here b@5000 closes [0, 1000], which is emitted, "+
				"and the flush record an hour later closes [5000, 5000], which is lost (in generated input, sessions ending "+
				"shortly before a whole minute, where the store's one-minute segments end, were lost too). Kappa emits the "+
				"windows a record closes before it stores the record (docs/design.md); the generated cases compare its "+
				"EmitFinal with suppress(untilWindowCloses) instead",
			[]in{at("a", 0), at("a", 1000), at("b", 5000)},
			windows(w{"a", 0, 1000, 2}, w{"b", 5000, 5000, 1}),
			windows(w{"a", 0, 1000, 2})),

		crafted("session-extended-back-late", session, session,
			"a record more than gap + grace behind stream time that falls within the gap before an open session: "+
				"Kafka Streams extends the session backwards (the merged session has not closed); Kappa drops the record "+
				"as late, since such a record may fall into an open session or extend one forward only (docs/windows.md)",
			// At stream time 12000, a@8500 is 3.5 s behind, 1.5 s before [10000, 12000].
			[]in{at("a", 10000), at("a", 12000), at("a", 8500)},
			windows(w{"a", 10000, 12000, 2}),
			windows(w{"a", 8500, 12000, 3})),

		// docs/windows.md says Kafka Streams merges a record into a closed
		// session its store still holds. Kafka Streams 4.4's store no
		// longer returns closed sessions (with the default retention), so
		// both start a session of its own for a@7500, 2.5 s behind stream
		// time and within the gap after [6000, 6000], closed at 9001.
		crafted("closed-session-stays-closed", session, session, "",
			[]in{at("a", 6000), at("a", 10000), at("a", 7500)},
			windows(w{"a", 6000, 6000, 1}, w{"a", 7500, 7500, 1}, w{"a", 10000, 10000, 1}),
			windows(w{"a", 6000, 6000, 1}, w{"a", 7500, 7500, 1}, w{"a", 10000, 10000, 1})),

		crafted("windowed-tombstone", tumbling, tumbling,
			"a record with a null value: Kafka Streams' windowed count counts it (its aggregation skips null keys only, "+
				"although the javadoc of TimeWindowedKStream.count says null values are ignored); Kappa skips it, as "+
				"Kafka Streams' count does without windows",
			[]in{at("a", 0), del("a", 500), at("a", 1000)},
			windows(w{"a", 0, 2000, 2}),
			windows(w{"a", 0, 2000, 3})),

		crafted("session-tombstone", session, session,
			"the same for sessions: in Kafka Streams the null value joins, and extends, the session",
			[]in{at("a", 0), del("a", 500)},
			windows(w{"a", 0, 0, 1}),
			windows(w{"a", 0, 500, 2})),
	}
}

// w is a window's final count in a crafted case, times relative to t0.
type w struct {
	key        string
	start, end int64
	count      int
}

// windows returns the final table of windowed counts ws, in the output's
// format.
func windows(ws ...w) map[string]string {
	m := map[string]string{}
	for _, x := range ws {
		m[windowKey(x.key, t0+x.start, t0+x.end)] = strconv.Itoa(x.count)
	}
	return m
}

// windowKey is the output key of a key's window: "key@start@end", as
// KsDiff.windowed writes it.
func windowKey(key string, start, end int64) string { return fmt.Sprintf("%s@%d@%d", key, start, end) }

// withoutFlush returns m without the keys of flush records' windows.
func withoutFlush(m map[string]string) map[string]string {
	m = maps.Clone(m)
	maps.DeleteFunc(m, func(k, _ string) bool { return len(k) > 0 && k[0] == '~' })
	return m
}
