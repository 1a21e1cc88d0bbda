// Package processor is the core of Kappa's topologies: the topology graph,
// tasks, and the Processor API.
//
// # Topologies and tasks
//
// A [Topology] is a graph of nodes: sources that read and decode topics,
// processors, and sinks that encode and write. Package stream builds it;
// [Builder] is the lower-level way. Build splits the graph into
// sub-topologies, its connected parts; a repartition topic splits a graph
// in two. Each partition of a sub-topology's inputs is one [Task], which
// owns an instance of every node of the sub-topology and processes one
// record at a time, in offset order per partition. [Topology.Describe]
// prints the graph in the layout of Kafka Streams, and [Topology.Diagram]
// draws it in Graphviz DOT or Mermaid.
//
// # The Processor API
//
// A [Processor] sees each record ([Record]: key, value, timestamp, headers)
// and, through its [Context], the input record's topic, partition and
// offset; it forwards zero or more records to its children. Add one with
// stream.Process; [Func] adapts a plain function.
//
//	stamp := processor.Func[string, Click, string, Click](
//		func(ctx processor.Context[string, Click], rec processor.Record[string, Click]) error {
//			m := ctx.RecordMetadata()
//			rec.Headers = append(rec.Headers, processor.Header{Key: "src", Value: []byte(m.Topic)})
//			ctx.Forward(rec)
//			return nil
//		})
//	out := stream.Process(clicks, stamp.Supply())
//
// # Running a topology
//
// Package processor does not run topologies: package kappa does, with its
// App, and package streamtest does without a broker. The task's life
// cycle (restore, process, commit, close) is driven only by them; a node
// factory receives its [Task] to register stores, schedule punctuations
// and send records.
package processor
