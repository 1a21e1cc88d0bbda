// Command kappa is the command-line tool of Kappa: it runs a development
// broker, administers topics, writes and reads records, and prints
// topologies.
//
// # Commands
//
//	kappa broker   [--listen 127.0.0.1:9092] [--data-dir ./kappa-data] [--partitions 3]
//	kappa topics   list | create TOPIC... | describe TOPIC... | delete TOPIC...
//	kappa produce  TOPIC [--key-separator SEP] [--partition N]
//	kappa consume  TOPIC [--from-beginning] [--max N] [--group G] [--timeout D]
//	               [--print-partition] [--print-offset] [--print-timestamp]
//	               [--key-separator SEP]
//	kappa describe [NAME]
//	kappa help     [COMMAND]
//
// "kappa broker" runs the embedded broker of package
// [github.com/kappa-streams/kappa/broker] until SIGINT or SIGTERM. It prints
// "kappa broker listening on ADDR (...)" once it accepts connections, and
// with --data-dir keeps its data across restarts.
//
// "kappa produce" writes each line of stdin as a record; with
// --key-separator the text before the first separator is the key. Keys are
// partitioned with murmur2, as Kafka's clients and Kappa applications do.
// "kappa consume" prints records as key<TAB>value lines, optionally
// prefixed by partition, offset and timestamp, and with --group commits
// what it printed. Both suit scripts: consume's --max and --timeout bound
// how long it runs.
//
// "kappa describe" prints one of the topologies registered in this
// command's topologies map; applications print their own with
// Topology.Describe.
//
// # Connecting
//
// topics, produce and consume take the connection flags --brokers
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
