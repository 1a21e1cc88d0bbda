package runner

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is everything a Runtime needs. The root kappa package fills
// it from the App's options; defaults are filled by New.
type Config struct {
	Topology *processor.Topology
	Plan     *processor.Plan
	// ClientOpts connect to the cluster (seeds, TLS, SASL).
	ClientOpts []kgo.Opt
	// CommitInterval is the time between commits. Default 30s, 100ms
	// under exactly-once.
	CommitInterval time.Duration
	// Guarantee is the processing guarantee. Default AtLeastOnce.
	Guarantee processor.Guarantee
	OnError   processor.ErrorPolicy
	Logger    *slog.Logger
	// Workers bounds how many tasks process at once. Default GOMAXPROCS.
	Workers int
	// MaxPollRecords bounds the records taken per poll. Default 10000.
	MaxPollRecords int
	// SessionTimeout is the group session timeout: how long a member that
	// died without leaving keeps its tasks. Default 45s (Kafka's default).
	SessionTimeout time.Duration
	// RebalanceTimeout is how long a rebalance waits for every member to
	// rejoin. Default 15s.
	RebalanceTimeout time.Duration
	// StateDir is the root of persistent stores. Default: a "kappa"
	// directory under the system temp dir.
	StateDir string
	// OnBalance, when set, sees each assignment this member computes as
	// group leader.
	OnBalance func(map[string][]processor.TaskID)
	// MaxTaskIdle bounds how long a task reading several partitions waits
	// for records of one that has none buffered and is not caught up,
	// before it processes the others without it. Default 100ms.
	MaxTaskIdle time.Duration
	// CacheBytes is the record-cache budget shared by the stores of all
	// tasks; nil is state.DefaultCacheBytes, 0 turns caching off.
	CacheBytes *int64
	// StandbyReplicas is how many warm copies of each task with
	// persistent, logged stores other instances keep. Default 0.
	StandbyReplicas int
	// MaxWarmupReplicas bounds the warm-up copies assigned at once: a task
	// the balance moves to a member without a caught-up copy stays with
	// its owner while that member warms one up (KIP-441). 0 moves tasks
	// cold. The kappa package's default is 2, as Kafka Streams'.
	MaxWarmupReplicas int
	// InstanceID makes the instance a static member of its group
	// (group.instance.id): a restart within the session timeout gets its
	// tasks back without a rebalance. "" is a dynamic member.
	InstanceID string
	// Endpoint is the instance's query endpoint (host:port), advertised to
	// the group so that other instances route queries for its tasks here;
	// "" advertises none.
	Endpoint string
	// Metrics receives the instance's metrics; the App keeps one across
	// its runs, so counters continue. Nil turns metrics off.
	Metrics *Metrics
	// UserClientOpts are the user's own options for the instance's main
	// client (the consumer group's, which also produces), such as hooks
	// (kprom); Kappa's options follow them and win where they conflict.
	// They are not given to the changelog reader's client.
	UserClientOpts []kgo.Opt
}

// Defaults of Config, in one place: kappa's options document them
// and leave a field zero to take its default.
const (
	DefaultCommitInterval = 30 * time.Second
	// DefaultCommitIntervalExactlyOnce is the commit interval under
	// exactly-once, as in Kafka Streams: outputs are visible to readers
	// of committed data only when their transaction commits.
	DefaultCommitIntervalExactlyOnce = 100 * time.Millisecond
	DefaultMaxPollRecords            = 10000
	DefaultSessionTimeout            = 45 * time.Second
	// DefaultRebalanceTimeout is shorter than Kafka clients' 60s: a member
	// that dies during a rebalance holds it up this long, with no task
	// running in the whole group.
	DefaultRebalanceTimeout = 15 * time.Second
	DefaultMaxTaskIdle      = 100 * time.Millisecond
)

// DefaultStateDir returns the default root of persistent stores: a
// "kappa" directory under the system temp dir.
func DefaultStateDir() string { return filepath.Join(os.TempDir(), "kappa") }

// ensureDefaults fills the zero fields of c with their defaults.
func (c *Config) ensureDefaults() {
	if c.MaxTaskIdle <= 0 {
		c.MaxTaskIdle = DefaultMaxTaskIdle
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = DefaultCommitInterval
		if c.Guarantee == processor.ExactlyOnce {
			c.CommitInterval = DefaultCommitIntervalExactlyOnce
		}
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir()
	}
}
