// Package stream is Kappa's typed DSL: build a topology from streams and
// operators, then run it with kappa.New or test it with streamtest.
//
// # Types
//
// Codecs given at a source fix the types, and they flow through every
// operator; there is no reflection and no any in user code. Operators that
// keep the types are methods; operators that change them are functions
// taking the stream first, so type arguments are inferred:
//
//	clicks := stream.From(b, "clicks", codec.String(), codec.JSON[Click]())
//	human := clicks.Filter(func(_ string, c Click) bool { return !c.Bot })   // method
//	titles := stream.MapValues(human, func(_ string, c Click) string { return c.Title }) // function
//	titles.To("titles")
//
// A codec seen at a source or given with [With] follows its type: any later
// key or value of that type reuses it. Only a type the builder has not seen
// needs With, and Build says so, naming the operator.
//
// # Errors
//
// DSL calls never return errors. Problems (a missing codec, a duplicate
// name, an option that does not fit) are collected and returned together by
// [Builder.Build], each naming its operator. Functions that can fail at run
// time have an Err variant ([MapValuesErr], [MapErr], [FlatMapErr],
// [FlatMapValuesErr]); their errors, and panics in any user function, send
// the input record to the dead-letter topic.
//
// # Names
//
// Every operator takes [Named]. Names show in Describe, logs and dead-letter
// headers, and name internal topics, so give stable names to operators
// whose internal topics you care about. Unnamed operators get deterministic
// generated names ("KSTREAM-FILTER-0000000002").
//
// # Repartitioning
//
// [Map], [SelectKey], [FlatMap] and [Process] mark their output as
// re-keyed. [Stream.Repartition] writes a stream through the internal topic
// "<app>-<name>-repartition" so that records are partitioned by their
// current key; key-based stateful operators insert it on their own.
//
// # Windows
//
// [WindowedBy] cuts a grouped stream into tumbling, hopping, sliding or
// session windows (package window) for [WindowedStream.Count],
// [WindowedStream.Reduce], [AggregateWindowed] and, for sessions,
// [AggregateSessions]; [EmitFinal] emits one result per window when it
// closes. Process nodes declare window stores with [WindowStore] and
// [SessionStore]. See docs/windows.md.
//
// # Joins
//
// [JoinStreams], [LeftJoinStreams] and [OuterJoinStreams] join two streams
// within window.JoinWindows; [JoinTable] and [LeftJoinTable] a stream with
// a table; [JoinTables], [LeftJoinTables] and [OuterJoinTables] two tables;
// [JoinGlobal] and [LeftJoinGlobal] a stream with a [GlobalTable]. Inputs
// of the first three kinds must be co-partitioned (checked at startup); a
// re-keyed side is repartitioned first. See docs/joins.md.
//
// # Callbacks
//
// User functions run on the goroutine of the task that owns the record,
// one record at a time per task, and concurrently across tasks: guard state
// shared between tasks. Timestamps and headers pass through every operator
// unchanged unless a Processor changes them; headers may be shared between
// branches, so copy the slice before changing it.
package stream
