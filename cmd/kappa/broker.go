package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/kappa-streams/kappa/broker/embedded"
)

// brokerAbout is the description "kappa broker -h" prints.
const brokerAbout = `
Runs a single-node Kafka-protocol broker in this process until SIGINT
(Ctrl-C) or SIGTERM, then closes it cleanly. Any Kafka client can use it,
and several Kappa applications on one machine can share it.

Once it accepts connections it prints one line to stdout:

  kappa broker listening on 127.0.0.1:9092 (data in ./kappa-data)

With --data-dir, topics, records, offsets and groups survive a restart;
--data-dir "" keeps everything in memory. After a crash, the next start
first writes ABORT markers for the transactions the crash left open.

With --auto-create-topics, a client that asks for a topic that does not
exist creates it with --partitions partitions, as a Kafka broker with
auto.create.topics.enable does; "kappa produce" then writes to new topics
without "kappa topics create". The line then ends "; topics auto-created)".`

// runBroker implements "kappa broker": it runs an embedded broker until ctx
// is canceled.
func runBroker(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	c := newCmdFlags("broker", "", brokerAbout)
	listen := c.String("listen", "127.0.0.1:9092", "`HOST:PORT` address to listen on; port 0 picks a free port")
	dataDir := c.String("data-dir", "./kappa-data", "`DIR` directory that keeps the data across restarts; \"\" keeps it in memory")
	parts := &intFlag{v: 3, min: 1, max: math.MaxInt32}
	c.Var(parts, "partitions", "give topics created without a count `N` partitions")
	autoCreate := c.Bool("auto-create-topics", false, "create a topic when a client asks for one that does not exist (default off)")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return c.usageErrorf("unexpected argument %q: the broker takes only flags", pos[0])
	}
	if _, port, err := net.SplitHostPort(*listen); err != nil || !validPort(port) {
		return c.usageErrorf("--listen %q: want host:port with a port from 0 to 65535, such as --listen 127.0.0.1:9092 (0 picks a free port)", *listen)
	}

	opts := []embedded.Opt{embedded.Listen(*listen), embedded.DefaultPartitions(parts.v)}
	where := "in memory: nothing is kept after exit"
	if *dataDir != "" {
		opts = append(opts, embedded.DataDir(*dataDir))
		where = "data in " + *dataDir
	}
	if *autoCreate {
		opts = append(opts, embedded.AutoCreateTopics())
		where += "; topics auto-created"
	}
	b, err := embedded.New(opts...)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w; another process uses the port: stop it or pick another with --listen", err)
		}
		return err
	}
	fmt.Fprintf(stdout, "kappa broker listening on %s (%s)\n", strings.Join(b.Addrs(), ","), where)
	<-ctx.Done()
	fmt.Fprintln(stderr, "kappa broker: stopping")
	if err := b.Close(); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "kappa broker: stopped")
	return nil
}

// validPort reports whether s is a TCP port number, 0 included.
func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}
