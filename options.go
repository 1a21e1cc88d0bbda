package kappa

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"time"

	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/internal/runner"
	"github.com/kappa-streams/kappa/processor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Opt configures an App.
type Opt func(*config)

type config struct {
	appID            string
	seeds            []string
	connOpts         []broker.ConnOpt
	commitInterval   time.Duration
	onError          ErrorPolicy
	logger           *slog.Logger
	workers          int
	maxPoll          int
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	signals          bool
	onBalance        func(map[string][]processor.TaskID)
	stateDir         string
	cacheBytes       *int64
	maxTaskIdle      time.Duration
	guarantee        ProcessingGuarantee
	httpAddr         string
	appServer        string
	metricsReg       prometheus.Registerer
	metricsRegSet    bool
	clientOpts       []kgo.Opt
	handlers         []handler
	instanceID       string
	standbys         int
	warmups          int
	replicas         *int // nil: min(3, brokers)
	minISR           *int // nil: replicas-1, at least 1
}

// handler is a user's HTTP handler on the app's listener.
type handler struct {
	pattern string
	h       http.Handler
}

// ErrorPolicy says what happens to a record that fails to decode or whose
// processing returns an error or panics.
type ErrorPolicy = processor.ErrorPolicy

const (
	// DeadLetter sends the record to "<app>-dlq" with headers naming the
	// error, node, source topic, partition and offset, counts it, and
	// continues. The default.
	DeadLetter = processor.DeadLetter
	// FailFast stops the app with an error naming the record. Nothing is
	// committed after the failure (the record may have changed a store
	// before it failed; under ExactlyOnce the open transaction aborts), so
	// a restart processes the records since the last commit again, the
	// failed one included.
	FailFast = processor.FailFast
)

// ProcessingGuarantee is what a crash may do to results: AtLeastOnce or
// ExactlyOnce.
type ProcessingGuarantee = processor.Guarantee

const (
	// AtLeastOnce: a crash loses nothing, but records processed since the
	// last commit are processed again, so outputs and aggregates may see
	// them twice. The default, as in Kafka Streams.
	AtLeastOnce = processor.AtLeastOnce
	// ExactlyOnce: each commit interval is one Kafka transaction over the
	// outputs, changelog and repartition records and the input offsets,
	// so consumers that read committed data (isolation.level
	// read_committed) see each record's effects exactly once, whatever
	// crashes. Kafka Streams' exactly_once_v2.
	ExactlyOnce = processor.ExactlyOnce
)

// Guarantee sets the processing guarantee, overriding the default
// AtLeastOnce. Under ExactlyOnce the commit interval defaults to 100ms
// (outputs become visible to read-committed consumers only when their
// transaction commits), the instance reads its inputs, changelogs and
// global tables committed only, and a task whose state directory was not
// closed cleanly has its stores wiped and restored from the changelogs.
// See docs/design.md.
func Guarantee(g ProcessingGuarantee) Opt { return func(c *config) { c.guarantee = g } }

// AppID sets the application ID: the consumer group ID and the prefix of
// every internal topic. Required. Instances with the same ID share work.
func AppID(id string) Opt { return func(c *config) { c.appID = id } }

// Brokers sets the seed brokers (host:port). Required.
func Brokers(seeds ...string) Opt { return func(c *config) { c.seeds = append(c.seeds, seeds...) } }

// BrokerOptions passes connection options such as broker.TLS and
// broker.SASLScram512. The default is plaintext without authentication.
func BrokerOptions(opts ...broker.ConnOpt) Opt {
	return func(c *config) { c.connOpts = append(c.connOpts, opts...) }
}

// CommitInterval sets how often input offsets are committed, overriding the
// default 30s (100ms under ExactlyOnce). Outputs are always acknowledged before their inputs commit;
// a shorter interval means less reprocessing after a crash. A commit runs
// when records were processed or wall-clock punctuators fired since the
// last one. A rejected output does not wait for it: the app stops at once.
// Under ExactlyOnce each interval is one transaction, so it may be at most
// 5 minutes.
func CommitInterval(d time.Duration) Opt { return func(c *config) { c.commitInterval = d } }

// OnError sets the policy for failed records, overriding the default
// DeadLetter.
func OnError(p ErrorPolicy) Opt { return func(c *config) { c.onError = p } }

// Logger sets the structured logger, overriding the default of no logs.
// Records carry the attributes app, task, topic, partition.
func Logger(l *slog.Logger) Opt { return func(c *config) { c.logger = l } }

// Workers bounds how many tasks process records at the same time,
// overriding the default GOMAXPROCS.
func Workers(n int) Opt { return func(c *config) { c.workers = n } }

// MaxPollRecords bounds how many records one poll hands to the tasks,
// overriding the default 10000.
func MaxPollRecords(n int) Opt { return func(c *config) { c.maxPoll = n } }

// SessionTimeout sets the consumer group session timeout: how long an
// instance that died without leaving keeps its tasks before others take
// them over. It overrides the default 45s; brokers bound it (6s minimum by
// default).
func SessionTimeout(d time.Duration) Opt { return func(c *config) { c.sessionTimeout = d } }

// RebalanceTimeout sets how long the group waits, once a rebalance
// starts, for every instance to rejoin, overriding the default 15s. An
// instance that dies while the group rebalances holds the rebalance up for
// this long (Kafka clients default to 60s or more, which left groups with
// no tasks running for a minute after a crash during a rebalance). It
// must cover the time an instance takes to commit the tasks it gives up;
// one that takes longer is dropped from the group and rejoins.
func RebalanceTimeout(d time.Duration) Opt { return func(c *config) { c.rebalanceTimeout = d } }

// HandleSignals sets whether Run stops gracefully on SIGINT and SIGTERM (and
// exits at once on a second one). The default is true; turn it off when the
// program handles signals itself and cancels Run's context.
func HandleSignals(on bool) Opt { return func(c *config) { c.signals = on } }

// OnBalance registers fn to see each task assignment this instance computes
// when it is the group leader, by member ID. For tests and diagnostics; fn
// must return quickly.
func OnBalance(fn func(map[string][]processor.TaskID)) Opt {
	return func(c *config) { c.onBalance = fn }
}

// StateDir sets the directory under which the app keeps its LevelDB stores,
// one directory per task: <dir>/<app-id>/<task>. The default is
// os.TempDir()/kappa. Give each instance on one machine the same or a
// different directory as you like: a task directory is locked while in
// use, and an instance waits for a task another local instance still
// holds. Stores are rebuilt from their changelogs when the directory is
// lost, so it needs no backup.
func StateDir(dir string) Opt { return func(c *config) { c.stateDir = dir } }

// CacheBytes sets the memory budget of the record caches of all the
// instance's stores, overriding the default 32 MiB (state.DefaultCacheBytes).
// The caches deduplicate updates per key between commits: a key updated
// many times between two commits is written to its store, its changelog
// and downstream once. When the budget is full, the least recently used
// entries are written out early. 0 turns caching off: every update is
// forwarded at once, as with Kafka Streams' statestore.cache.max.bytes=0.
// stream.CacheSize caps or turns off one store's cache.
func CacheBytes(n int64) Opt { return func(c *config) { c.cacheBytes = &n } }

// MaxTaskIdle bounds how long a task that reads several partitions (a
// join, a merge of topics) waits for records of one of them that has none
// buffered and is not caught up, overriding the default 100ms. While it
// waits, the task takes records in timestamp order across its inputs, so a
// replay processes them in the same order; after it, the task goes on
// with the inputs it has, as Kafka Streams does after max.task.idle.ms.
func MaxTaskIdle(d time.Duration) Opt { return func(c *config) { c.maxTaskIdle = d } }

// HTTP serves the instance's HTTP endpoints on addr (host:port; port 0
// picks a free one): /metrics, /healthz, /readyz, /topology and the
// interactive-query API under /v1/stores (see package query). It is off
// unless set; bind to loopback ("127.0.0.1:8080") unless other machines
// must reach it. The instance advertises the address to its group for
// query routing unless ApplicationServer gives another.
func HTTP(addr string) Opt { return func(c *config) { c.httpAddr = addr } }

// InstanceID makes the instance a static member of its group, as Kafka's
// group.instance.id does (KIP-345): an instance restarted within the
// session timeout (SessionTimeout) gets its tasks back without a
// rebalance, and the other instances go on undisturbed. Give each
// instance of an app its own stable ID, such as the host name or the
// ordinal of a StatefulSet pod, and keep its StateDir: the instance keeps
// the metadata of its last join there to rejoin with. A stopped static
// member does not leave the group, so its tasks move only after the
// session timeout. Two instances started with the same ID: the one that
// joined first stops with an error naming the ID.
func InstanceID(id string) Opt { return func(c *config) { c.instanceID = id } }

// StandbyReplicas keeps n warm copies of each task with persistent,
// logged stores on other instances, as Kafka Streams'
// num.standby.replicas does: each copy follows the task's changelogs
// (read committed under exactly-once) and processes nothing. When the
// task's instance dies, the group gives the task to the instance with the
// most caught-up copy, which opens it with little or nothing to restore.
// A copy needs an instance other than the task's own; with fewer
// instances, there are fewer copies. Default 0. (An instance that joins
// warms up copies of the tasks the balance moves to it with or without
// standbys: see MaxWarmupReplicas.) All instances of an app should use the
// same n.
func StandbyReplicas(n int) Opt { return func(c *config) { c.standbys = n } }

// DefaultMaxWarmupReplicas is the default of MaxWarmupReplicas.
const DefaultMaxWarmupReplicas = 2

// MaxWarmupReplicas bounds how many tasks warm up at once, overriding the
// default 2 (Kafka Streams' max.warmup.replicas). When the balance moves a
// task with persistent, logged stores to an instance that has no
// caught-up copy of it (an instance that just joined), the task stays
// with its owner while the new instance builds a copy from the
// changelogs; once the copy is caught up, the instance asks for a
// rebalance and the task moves, with little to restore. Tasks beyond the
// bound stay with their owners until a later round. 0 moves tasks at
// once, to restore where they land. Warm-ups work with or without
// StandbyReplicas.
func MaxWarmupReplicas(n int) Opt { return func(c *config) { c.warmups = n } }

// ReplicationFactor sets the replication factor of the topics the app
// creates: changelogs, repartition topics, the dead-letter topic and
// missing output topics. The default is 3, or the number of brokers when
// the cluster has fewer (1 on the embedded broker), as Kafka Streams
// advises for production. Topics that exist keep theirs. n must be at
// least 1 and at most the number of brokers.
func ReplicationFactor(n int) Opt { return func(c *config) { c.replicas = &n } }

// MinInsyncReplicas sets min.insync.replicas on the topics the app
// creates: how many replicas must have a write before the broker
// acknowledges it (the app's producers use acks=all). The default is one
// less than the replication factor, at least 1: with 3 replicas a write
// survives the loss of one broker and the topic stays writable while one
// is down. n must be at least 1 and at most the replication factor.
func MinInsyncReplicas(n int) Opt { return func(c *config) { c.minISR = &n } }

// Handle serves h for pattern (a net/http ServeMux pattern, such as
// "GET /v1/rank") on the listener HTTP opens, beside Kappa's own
// endpoints, so that an app's API and its queries share one address. A
// pattern that conflicts with Kappa's endpoints makes Run fail.
func Handle(pattern string, h http.Handler) Opt {
	return func(c *config) { c.handlers = append(c.handlers, handler{pattern, h}) }
}

// ApplicationServer sets the host:port other instances use to reach this
// one's query API, as Kafka Streams' application.server does: it is
// advertised in the group's metadata, so that every instance knows which
// instance holds each key. Set it when the HTTP address is not the one
// others can reach (a wildcard bind, a container's port mapping).
func ApplicationServer(hostPort string) Opt { return func(c *config) { c.appServer = hostPort } }

// MetricsRegistry registers the app's metrics (kappa_*, see docs/metrics.md)
// in reg, overriding the default of a registry of the app's own, which also
// holds the Go runtime and process collectors. The HTTP listener's
// /metrics serves reg when it is also a prometheus.Gatherer (a
// *prometheus.Registry is), and the app's own registry otherwise. An app
// ID's metrics can be registered once per registry: give each instance of
// one app in a process its own registry. nil turns the metrics off: nothing
// is registered or measured, /metrics is empty.
func MetricsRegistry(reg prometheus.Registerer) Opt {
	return func(c *config) { c.metricsReg, c.metricsRegSet = reg, true }
}

// ClientOpts passes franz-go options to the instance's main Kafka client,
// the one that joins the group, consumes and produces, after the connection
// options (Brokers, BrokerOptions) and before Kappa's own, which win where
// they conflict (the group, the topics, commits, partitioning). They are
// not given to the client that reads changelogs and global tables. The
// default is none. Use them for client hooks, such as franz-go's kprom
// metrics (module github.com/twmb/franz-go/plugin/kprom):
//
//	m := kprom.NewMetrics("kappa_client", kprom.Registry(reg))
//	app, err := kappa.New(topo, ..., kappa.MetricsRegistry(reg), kappa.ClientOpts(kgo.WithHooks(m)))
func ClientOpts(opts ...kgo.Opt) Opt {
	return func(c *config) { c.clientOpts = append(c.clientOpts, opts...) }
}

var validAppID = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// validate reports every problem, each naming the option and the fix.
func (c *config) validate() error {
	var errs []error
	switch {
	case c.appID == "":
		errs = append(errs, errors.New(`kappa: AppID is required: pass kappa.AppID("my-app")`))
	case !validAppID.MatchString(c.appID) || c.appID == "." || c.appID == ".." || len(c.appID) > 200:
		errs = append(errs, fmt.Errorf("kappa: AppID(%q): use at most 200 ASCII letters, digits, '.', '_' and '-', not . or .. alone (it names the group, the topics and a directory)", c.appID))
	}
	if len(c.seeds) == 0 {
		errs = append(errs, errors.New(`kappa: Brokers is required: pass kappa.Brokers("127.0.0.1:9092"), or the addresses of an embedded broker (embedded.New().Addrs())`))
	}
	for _, s := range c.seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("kappa: Brokers(%q): want host:port, for example 127.0.0.1:9092", s))
		}
	}
	if c.commitInterval < 0 {
		errs = append(errs, fmt.Errorf("kappa: CommitInterval(%v): must be positive, for example 5*time.Second", c.commitInterval))
	}
	if c.guarantee == ExactlyOnce && c.commitInterval > runner.MaxCommitIntervalExactlyOnce {
		errs = append(errs, fmt.Errorf("kappa: CommitInterval(%v): under ExactlyOnce at most %v, since one transaction spans a commit interval "+
			"and brokers abort transactions older than transaction.max.timeout.ms (15m by default); commit more often",
			c.commitInterval, runner.MaxCommitIntervalExactlyOnce))
	}
	if c.guarantee != AtLeastOnce && c.guarantee != ExactlyOnce {
		errs = append(errs, fmt.Errorf("kappa: Guarantee(%d): use kappa.AtLeastOnce or kappa.ExactlyOnce", c.guarantee))
	}
	if c.onError != DeadLetter && c.onError != FailFast {
		errs = append(errs, fmt.Errorf("kappa: OnError(%d): use kappa.DeadLetter or kappa.FailFast", c.onError))
	}
	if c.workers < 0 {
		errs = append(errs, fmt.Errorf("kappa: Workers(%d): must be at least 1", c.workers))
	}
	if c.maxPoll < 0 {
		errs = append(errs, fmt.Errorf("kappa: MaxPollRecords(%d): must be at least 1", c.maxPoll))
	}
	if c.stateDir != "" {
		if fi, err := os.Stat(c.stateDir); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("kappa: StateDir(%q): is a file; give a directory (it is created if missing)", c.stateDir))
		}
	}
	if c.cacheBytes != nil && *c.cacheBytes < 0 {
		errs = append(errs, fmt.Errorf("kappa: CacheBytes(%d): must be 0 (caching off) or more, for example 64<<20", *c.cacheBytes))
	}
	if c.maxTaskIdle < 0 {
		errs = append(errs, fmt.Errorf("kappa: MaxTaskIdle(%v): must be positive, for example 500*time.Millisecond", c.maxTaskIdle))
	}
	if c.rebalanceTimeout < 0 || (c.rebalanceTimeout > 0 && c.rebalanceTimeout < time.Second) {
		errs = append(errs, fmt.Errorf("kappa: RebalanceTimeout(%v): must be at least 1s, the time instances have to rejoin a rebalance", c.rebalanceTimeout))
	}
	if c.warmups < 0 {
		errs = append(errs, fmt.Errorf("kappa: MaxWarmupReplicas(%d): must be 0 (tasks move cold) or more, usually 2", c.warmups))
	}
	if c.standbys < 0 {
		errs = append(errs, fmt.Errorf("kappa: StandbyReplicas(%d): must be 0 or more, usually 1", c.standbys))
	}
	if c.replicas != nil && (*c.replicas < 1 || *c.replicas > 32767) {
		errs = append(errs, fmt.Errorf("kappa: ReplicationFactor(%d): must be at least 1, usually 3 (at most the number of brokers)", *c.replicas))
	}
	if c.minISR != nil {
		switch {
		case *c.minISR < 1:
			errs = append(errs, fmt.Errorf("kappa: MinInsyncReplicas(%d): must be at least 1, usually one less than the replication factor", *c.minISR))
		case c.replicas != nil && *c.minISR > *c.replicas:
			errs = append(errs, fmt.Errorf("kappa: MinInsyncReplicas(%d): must be at most ReplicationFactor (%d), usually one less", *c.minISR, *c.replicas))
		}
	}
	if c.instanceID != "" && (!validAppID.MatchString(c.instanceID) || len(c.instanceID) > 200) {
		errs = append(errs, fmt.Errorf("kappa: InstanceID(%q): use at most 200 ASCII letters, digits, '.', '_' and '-', for example the host name", c.instanceID))
	}
	if c.httpAddr != "" {
		if _, _, err := net.SplitHostPort(c.httpAddr); err != nil {
			errs = append(errs, fmt.Errorf("kappa: HTTP(%q): want host:port, for example 127.0.0.1:8080", c.httpAddr))
		}
	}
	if len(c.handlers) > 0 && c.httpAddr == "" {
		errs = append(errs, fmt.Errorf("kappa: Handle(%q) without HTTP: also pass kappa.HTTP(addr), the listener to serve it on", c.handlers[0].pattern))
	}
	for _, h := range c.handlers {
		if h.h == nil {
			errs = append(errs, fmt.Errorf("kappa: Handle(%q): nil handler", h.pattern))
		}
	}
	if c.appServer != "" {
		if host, port, err := net.SplitHostPort(c.appServer); err != nil || host == "" || port == "" || port == "0" {
			errs = append(errs, fmt.Errorf("kappa: ApplicationServer(%q): want the host:port others reach this instance at, for example app-1.internal:8080", c.appServer))
		}
		if c.httpAddr == "" {
			errs = append(errs, fmt.Errorf("kappa: ApplicationServer(%q) without HTTP: also pass kappa.HTTP(addr), the listener it points to", c.appServer))
		}
	}
	if c.sessionTimeout < 0 {
		errs = append(errs, fmt.Errorf("kappa: SessionTimeout(%v): must be positive", c.sessionTimeout))
	}
	return errors.Join(errs...)
}
