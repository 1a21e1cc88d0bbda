// Package streamtest runs a topology in memory, deterministically, with no
// broker: pipe typed records into inputs, read typed records from outputs,
// and inspect dead letters.
//
// The driver runs the same task code as a kappa.App: the same decoding,
// operators, partitioning (murmur2 of the encoded key) and dead-letter
// routing. Inputs may have several partitions ([Partitions]); records
// written to repartition topics are processed before Pipe returns.
//
//	d, err := streamtest.New(topo, streamtest.Partitions("clicks", 4))
//	in := streamtest.NewInput(d, "clicks", codec.String(), codec.JSON[Click]())
//	out := streamtest.NewOutput(d, "clicks-by-article", codec.String(), codec.JSON[Click]())
//	in.Pipe("user-1", Click{ArticleID: "a1"})
//	recs := out.ReadAll()
//	bad := d.DeadLetters()
package streamtest
