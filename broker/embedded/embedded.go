package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a single-node Kafka-protocol broker running in this process.
// Close it to release its port and flush its data directory.
type Broker struct {
	c     *kfake.Cluster
	addrs []string
	// recovered is what the start did about transactions the last run
	// left open.
	recovered recovered
	dataDir   string
	closeOnce sync.Once
}

// cleanStopMark is the file Close leaves in the data directory: the next
// start knows the broker stopped cleanly.
const cleanStopMark = ".kappa-clean-stop"

// RecoveredTxns returns how many transactions left open by the last run
// over the data directory (a crash, or a stop while clients were in a
// transaction) this start aborted, writing their markers.
func (e *Broker) RecoveredTxns() int { return e.recovered.aborted }

// Opt configures New.
type Opt func(*embeddedCfg)

type embeddedCfg struct {
	listen     string
	dataDir    string
	partitions int
	autoCreate bool
	logger     *slog.Logger
	minSession time.Duration
}

// Listen sets the host:port to listen on, overriding the default
// "127.0.0.1:0" (loopback, a free port chosen by the kernel).
func Listen(addr string) Opt { return func(c *embeddedCfg) { c.listen = addr } }

// DataDir persists the broker's log, offsets and groups under dir, so a
// restart picks up where the last run stopped. The default keeps everything
// in memory.
func DataDir(dir string) Opt { return func(c *embeddedCfg) { c.dataDir = dir } }

// DefaultPartitions sets the partition count of topics created without one
// (auto-created topics, or CreateTopics with -1), overriding the default 3.
func DefaultPartitions(n int) Opt { return func(c *embeddedCfg) { c.partitions = n } }

// AutoCreateTopics lets producers create topics by writing to them, as
// auto.create.topics.enable does on a Kafka broker. The default is off.
func AutoCreateTopics() Opt { return func(c *embeddedCfg) { c.autoCreate = true } }

// MinSessionTimeout lowers the shortest session timeout group members may
// ask for (Kafka's group.min.session.timeout.ms), from the default 6s:
// tests and benchmarks of failover use it so that a killed member is
// noticed quickly.
func MinSessionTimeout(d time.Duration) Opt { return func(c *embeddedCfg) { c.minSession = d } }

// Logger sends the broker's logs to l, overriding the default of no logs.
func Logger(l *slog.Logger) Opt { return func(c *embeddedCfg) { c.logger = l } }

// New starts a broker. It returns once the broker accepts
// connections.
func New(opts ...Opt) (*Broker, error) {
	cfg := embeddedCfg{listen: "127.0.0.1:0", partitions: 3}
	for _, o := range opts {
		o(&cfg)
	}
	host, portStr, err := net.SplitHostPort(cfg.listen)
	if err != nil {
		return nil, fmt.Errorf("embedded: listen address %q: %w (want host:port, for example 127.0.0.1:9092)", cfg.listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("embedded: listen address %q: port must be a number from 0 to 65535", cfg.listen)
	}
	if cfg.partitions < 1 {
		return nil, fmt.Errorf("embedded: DefaultPartitions(%d): must be at least 1", cfg.partitions)
	}
	// A data directory that holds the data of a run that did not stop
	// cleanly (no clean-stop mark) may hold transactions that run left
	// open: they get their markers before clients are let in
	// (recoverTxns). After a clean stop the broker keeps its open
	// transactions as they were, and their producers may still commit
	// them: they are left alone.
	recovering := false
	if cfg.dataDir != "" {
		mark := filepath.Join(cfg.dataDir, cleanStopMark)
		_, err := os.Stat(mark)
		clean := err == nil
		if entries, err := os.ReadDir(cfg.dataDir); err == nil && len(entries) > 0 && !clean {
			recovering = true
		}
		if clean {
			if err := os.Remove(mark); err != nil {
				return nil, fmt.Errorf("embedded: data directory %s: %w", cfg.dataDir, err)
			}
		}
	}
	var gate *gatedListener
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DefaultNumPartitions(cfg.partitions),
		kfake.ClusterID("kappa-embedded"),
		// kfake always binds 127.0.0.1; bind the host the user asked for,
		// behind the gate that keeps clients out during recovery.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, net.JoinHostPort(host, portStr))
			if err != nil {
				return nil, err
			}
			gate = newGatedListener(l)
			return gate, nil
		}),
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	if cfg.autoCreate {
		kopts = append(kopts, kfake.AllowAutoTopicCreation())
	}
	if cfg.minSession > 0 {
		kopts = append(kopts, kfake.GroupMinSessionTimeout(cfg.minSession))
	}
	if cfg.logger != nil {
		kopts = append(kopts, kfake.WithLogger(slogLogger{cfg.logger}))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("embedded: start embedded broker on %s: %w", cfg.listen, err)
	}
	e := &Broker{c: c, addrs: c.ListenAddrs(), dataDir: cfg.dataDir}
	if recovering {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		rec, err := recoverTxns(ctx, gate, e.addrs[0])
		cancel()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("embedded: completing the transactions left open in %s: %w", cfg.dataDir, err)
		}
		if cfg.logger != nil && rec.aborted > 0 {
			cfg.logger.Info("aborted the transactions the last run left open", "component", "broker",
				"markers", rec.aborted, "partitions", rec.partitions, "took", rec.took)
		}
		e.recovered = rec
	}
	gate.open()
	return e, nil
}

// Addrs returns the seed addresses clients connect to.
func (e *Broker) Addrs() []string { return append([]string(nil), e.addrs...) }

// Close stops the broker and, with DataDir, writes its state to disk. It is
// safe to call more than once.
func (e *Broker) Close() error {
	if e == nil || e.c == nil {
		return errors.New("embedded: Close on a nil Embedded")
	}
	var err error
	e.closeOnce.Do(func() {
		e.c.Close()
		if e.dataDir != "" {
			err = os.WriteFile(filepath.Join(e.dataDir, cleanStopMark), nil, 0o644)
		}
	})
	return err
}

// Cluster exposes the underlying kfake cluster, for tests that inject faults
// or compact logs on demand.
func (e *Broker) Cluster() *kfake.Cluster { return e.c }

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	var lv slog.Level
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	case kfake.LogLevelInfo:
		lv = slog.LevelInfo
	default:
		lv = slog.LevelDebug
	}
	s.l.Log(context.Background(), lv, fmt.Sprintf(msg, args...), "component", "broker")
}
