// Package processor is Kappa's runtime core: the topology graph, tasks, the
// Processor API, the commit loop and task assignment.
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
// prints the graph in the layout of Kafka Streams.
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
// # Runtime
//
// [Runtime] runs a topology as one member of a consumer group with
// franz-go. [TaskBalancer] assigns tasks rather than partitions, so
// partition p of every input of a sub-topology lands on the same member;
// it is cooperative and sticky. Commits are at-least-once (outputs are
// flushed and acknowledged before input offsets commit) or, with
// ExactlyOnce, one transaction per commit interval over the outputs and
// the input offsets.
package processor
