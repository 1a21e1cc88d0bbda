// Command kappa is the command-line tool of Kappa: it runs a development
// broker, administers topics, writes and reads records, shows consumer
// groups and their lag, resets applications, and prints topologies.
// docs/cli.md describes every command with examples.
//
// # Commands
//
//	kappa broker   [--listen 127.0.0.1:9092] [--data-dir ./kappa-data] [--partitions 3]
//	               [--auto-create-topics]
//	kappa topics   list | create TOPIC... | describe TOPIC... | delete TOPIC...
//	kappa produce  TOPIC [--key-separator SEP] [--partition N]
//	kappa consume  TOPIC [--from-beginning] [--max N] [--group G] [--timeout D]
//	               [--print-partition] [--print-offset] [--print-timestamp]
//	               [--print-headers] [--key-format FORMAT] [--value-format FORMAT]
//	               [--key-separator SEP]
//	kappa groups   list | describe GROUP...
//	kappa reset    --app-id ID [--state-dir DIR] [--delete-dlq] [--dry-run]
//	kappa describe [NAME | --url http://HOST:PORT] [--format text|dot|mermaid]
//	kappa help     [COMMAND]
//
// "kappa broker" runs the embedded broker of package
// [github.com/kappa-streams/kappa/broker] until SIGINT or SIGTERM. It prints
// "kappa broker listening on ADDR (...)" once it accepts connections, and
// with --data-dir keeps its data across restarts. With --auto-create-topics
// it creates topics that clients ask for.
//
// "kappa produce" writes each line of stdin as a record; with
// --key-separator the text before the first separator is the key. Keys are
// partitioned with murmur2, as Kafka's clients and Kappa applications do.
// "kappa consume" prints records as key<TAB>value lines, optionally
// prefixed by partition, offset and timestamp, and with --group commits
// what it printed. Both suit scripts: consume's --max and --timeout bound
// how long it runs.
//
// "kappa consume --print-headers" shows headers, such as the kappa.error
// header of dead-letter records; --key-format and --value-format decode
// keys and values with package codec's codecs: string, int64, float64, hex,
// and windowed:FORMAT for the keys of windowed results.
//
// "kappa groups" lists consumer groups and describes one: its members, the
// partitions assigned to each, and each partition's committed offset, end
// offset and lag. A Kappa application is the group named by its
// application ID, with protocol kappa-tasks.
//
// "kappa reset" makes a stopped application reprocess its input from the
// start, like Kafka Streams' application reset tool: it commits the
// earliest offset of each input partition, deletes the internal
// (changelog and repartition) topics, keeps the dead-letter topic unless
// --delete-dlq is given, and deletes the local state. It refuses while the
// application runs; --dry-run prints what it would do.
//
// "kappa describe" prints one of the topologies registered in this
// command's topologies map, or with --url a running application's, from
// its HTTP listener (GET /topology?format=...). --format dot and mermaid
// draw it (processor.Topology.Diagram).
//
// # Connecting
//
// topics, produce, consume, groups and reset take the connection flags --brokers
// (default $KAPPA_BROKERS, else 127.0.0.1:9092), --tls, --sasl-mechanism,
// --sasl-user and --sasl-password (default $KAPPA_SASL_PASSWORD), before or
// after the command name.
//
// # Flags and exit status
//
// Flags may come before, between or after positional arguments; "--" ends
// them. Errors are printed to stderr prefixed "kappa: "; the exit status is
// 1 for a failure and 2 for a usage error (an unknown command or flag, a
// missing argument, a flag value that cannot work).
//
// # Example
//
//	kappa broker --data-dir "" &
//	kappa topics create clicks --partitions 6
//	printf 'alice:home\nbob:cart\n' | kappa produce clicks --key-separator :
//	kappa consume clicks --from-beginning --max 2 --print-partition
package main
