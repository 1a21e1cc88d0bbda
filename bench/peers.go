package main

// The peers in other languages (issue 19): Kafka Streams (bench/kstreams,
// a Maven module built by kstreams/build.sh) and Quix Streams
// (bench/quix/quix_bench.py), each run as a child process (child.go) with
// the same topology as the Kappa contender it is compared with.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kstreamsVersion is the Kafka Streams version bench/kstreams/pom.xml
// builds with.
const kstreamsVersion = "4.4.0"

// kstreamsMain is the main class of the Kafka Streams jar.
const kstreamsMain = "dev.kappa.bench.KStreamsBench"

// peerFlags are the flags of the peers, in every workload.
type peerFlags struct {
	java     string
	jar      string
	jvmOpts  string
	threads  int
	python   string
	quix     string
	brokers  string
	cluster  int
	replicas int
	isolate  string
	kfake    bool
}

func (p *peerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.java, "java", "java", "the java command that runs the kstreams contenders (JDK 17 or newer)")
	fs.StringVar(&p.jar, "kstreams-jar", filepath.Join("kstreams", "target", "kstreams-bench.jar"), "the jar of the kstreams contenders; build it with kstreams/build.sh")
	fs.StringVar(&p.jvmOpts, "jvm-opts", "", "space-separated JVM options of the kstreams contenders (such as -Xmx512m); none by default, so the JVM sizes its heap itself")
	fs.IntVar(&p.threads, "kstreams-threads", 0, "num.stream.threads of the kstreams contenders; 0 is GOMAXPROCS, the default number of tasks Kappa processes at once (kappa.Workers)")
	fs.StringVar(&p.python, "python", "python3", "the Python that runs the quix contenders (with quixstreams installed: pip install quixstreams)")
	fs.StringVar(&p.quix, "quix-script", filepath.Join("quix", "quix_bench.py"), "the script of the quix contenders")
	fs.StringVar(&p.brokers, "brokers", "", "comma-separated host:port of an external Kafka cluster to run on instead of the embedded broker")
	fs.IntVar(&p.cluster, "cluster", 0, "start an Apache Kafka cluster of this many nodes on loopback (internal/kafkacluster; needs java and the jars of internal/kafkacluster/fetch.sh) and run on it instead of the embedded broker, stopping it at the end")
	fs.BoolVar(&p.kfake, "kfake", false, "the cluster of -brokers is franz-go's kfake, such as \"kappa broker\": run the kstreams contenders with the workarounds they need on the embedded broker (kstreams/README.md)")
	fs.IntVar(&p.replicas, "replication", 0, "replication factor of the topics the harness creates, of the topics Kappa creates (kappa.ReplicationFactor) and of the kstreams contenders' internal topics (replication.factor); 0 is 1, or min(-cluster, 3) with -cluster")
	fs.StringVar(&p.isolate, "isolate", "auto", "run the Go contenders (raw, kappa, goka) in child processes, as kstreams and quix always are, so each one's peak RSS and CPU time are its own: on, off, or auto (on when a kstreams or quix contender is chosen)")
}

func (p *peerFlags) validate() error {
	switch p.isolate {
	case "auto", "on", "off":
	default:
		return fmt.Errorf("-isolate %q: want on, off or auto", p.isolate)
	}
	if p.cluster < 0 {
		return fmt.Errorf("-cluster %d: must be 0 or more", p.cluster)
	}
	if p.cluster > 0 && p.brokers != "" {
		return errors.New("-cluster and -brokers: give one or the other")
	}
	if p.replicas < 0 {
		return fmt.Errorf("-replication %d: must be 0 or more", p.replicas)
	}
	if p.replicas == 0 {
		p.replicas = 1
		if p.cluster > 0 {
			p.replicas = min(p.cluster, 3)
		}
	}
	if p.threads < 0 {
		return fmt.Errorf("-kstreams-threads %d: must be 0 or more", p.threads)
	}
	return nil
}

// kstreamsThreads is the number of stream threads of a kstreams contender.
func (p *peerFlags) kstreamsThreads() int {
	if p.threads > 0 {
		return p.threads
	}
	return runtime.GOMAXPROCS(0)
}

var (
	javaOnce   sync.Once
	javaMissed string
	quixOnce   sync.Once
	quixMissed string
)

// kstreamsMissing says why the kstreams contenders cannot run here, or
// returns "".
func (p *peerFlags) kstreamsMissing() string {
	javaOnce.Do(func() {
		if _, err := exec.LookPath(p.java); err != nil {
			javaMissed = fmt.Sprintf("no %s (%v): install a JDK 17 or newer (apt-get install openjdk-17-jdk-headless), then run kstreams/build.sh", p.java, err)
			return
		}
		if _, err := os.Stat(p.jar); err != nil {
			javaMissed = fmt.Sprintf("no Kafka Streams jar (%v): build it with kstreams/build.sh (Maven), or point -kstreams-jar at it", err)
		}
	})
	return javaMissed
}

// quixMissing says why the quix contenders cannot run here, or returns "".
func (p *peerFlags) quixMissing() string {
	quixOnce.Do(func() {
		if _, err := exec.LookPath(p.python); err != nil {
			quixMissed = fmt.Sprintf("no %s (%v)", p.python, err)
			return
		}
		if _, err := os.Stat(p.quix); err != nil {
			quixMissed = fmt.Sprintf("no Quix script (%v): point -quix-script at bench/quix/quix_bench.py", err)
			return
		}
		out, err := exec.Command(p.python, "-c", "import quixstreams; print(quixstreams.__version__)").CombinedOutput()
		if err != nil {
			quixMissed = fmt.Sprintf("quixstreams not importable by %s (%s): pip install quixstreams", p.python, lastLine(out))
			return
		}
		logf("quix: quixstreams %s", lastLine(out))
	})
	return quixMissed
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// kstreamsRun returns the run of a kstreams contender: the jar's main
// class with topology and j's topics and group, the flags of p, and the
// flags extra adds (each "--name value"). progress, when not nil, turns
// the processed count it reports into the one the harness measures by.
func kstreamsRun(topology string, extra func(j job) []string, progress func(int64) int64) func(ctx context.Context, j job) error {
	return func(ctx context.Context, j job) error {
		p := j.Peers
		dir, err := os.MkdirTemp("", "bench-kstreams-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		args := strings.Fields(p.jvmOpts)
		args = append(args, "-cp", p.jar, kstreamsMain, topology,
			"--bootstrap", strings.Join(j.Brokers, ","), "--in", j.In, "--out", j.Out, "--app-id", j.Group,
			"--threads", strconv.Itoa(p.kstreamsThreads()), "--replication", strconv.Itoa(p.replicas),
			"--state-dir", dir)
		if extra != nil {
			args = append(args, extra(j)...)
		}
		if j.Kfake {
			if err := createChangelogs(ctx, j, topology, args); err != nil {
				return err
			}
			// See KfakeCompat.java.
			args = append(args, "--kfake-compat", "true")
		}
		return runChild(ctx, j, childSpec{name: "kstreams", path: p.java, args: args, progress: progress, onEvent: logEvent("kstreams")})
	}
}

// kstreamsStores caches, by topology, the stores of a kstreams topology
// and the cleanup.policy of their changelogs.
var kstreamsStores sync.Map // string → [][2]string

// createChangelogs creates the changelog topics of the kstreams topology
// that args (the jar's command line) runs as j's application, before it
// runs. On the embedded broker (franz-go's kfake), Kafka Streams cannot
// create them itself: kfake's CreateTopics responses from v5 on hold
// configs that Kafka's admin client rejects (a config source of -1, or a
// null list when there are none). Kafka Streams then finds them and only
// checks their partition counts. The jar lists the stores (--list-stores),
// once per topology.
func createChangelogs(ctx context.Context, j job, topology string, args []string) error {
	v, ok := kstreamsStores.Load(topology)
	if !ok {
		out, err := exec.CommandContext(ctx, j.Peers.java, append(slices.Clone(args), "--list-stores", "true")...).Output()
		if err != nil {
			return fmt.Errorf("kstreams: listing the stores of %s: %w", topology, err)
		}
		var stores [][2]string
		for line := range strings.Lines(string(out)) {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "store" {
				stores = append(stores, [2]string{f[1], f[2]})
			}
		}
		kstreamsStores.Store(topology, stores)
		v = stores
	}
	stores := v.([][2]string)
	if len(stores) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(j.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, s := range stores {
		topic := j.Group + "-" + s[0] + "-changelog"
		resp, err := adm.CreateTopic(ctx, j.Partitions, int16(j.Peers.replicas), map[string]*string{"cleanup.policy": kadm.StringPtr(s[1])}, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kstreams: creating %s: %w", topic, err)
		}
	}
	return nil
}

// kstreamsNotes describes a kstreams contender's configuration for the
// table, after what: its topology and settings.
func kstreamsNotes(what string) string {
	return fmt.Sprintf("Kafka Streams %s, %s; RocksDB stores; JVM defaults unless -jvm-opts; num.stream.threads = -kstreams-threads (GOMAXPROCS by default); in a child process", kstreamsVersion, what)
}

// commitArgs are the kstreams flags of a commit interval and cache budget
// (kappa's default 32 MiB when cacheBytes is negative, so both budgets
// match).
func commitArgs(p childParams) []string {
	cache := p.cacheBytes
	if cache < 0 {
		cache = 32 << 20
	}
	return []string{"--commit-interval-ms", strconv.FormatInt(p.commitInterval.Milliseconds(), 10),
		"--cache-bytes", strconv.FormatInt(cache, 10)}
}

// quixRun returns the run of a quix contender with topology (stateless or
// count), committing every commitInterval.
func quixRun(topology string, commitSeconds float64) func(ctx context.Context, j job) error {
	return func(ctx context.Context, j job) error {
		p := j.Peers
		dir, err := os.MkdirTemp("", "bench-quix-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		args := []string{p.quix, topology, "--bootstrap", strings.Join(j.Brokers, ","), "--in", j.In, "--out", j.Out,
			"--group", j.Group, "--state-dir", dir, "--commit-interval", strconv.FormatFloat(commitSeconds, 'f', -1, 64)}
		return runChild(ctx, j, childSpec{name: "quix", path: p.python, args: args, onEvent: logEvent("quix")})
	}
}

// logEvent logs a child's events other than its progress.
func logEvent(name string) func(at time.Time, f []string) {
	return func(_ time.Time, f []string) { logf("%s: %s", name, strings.Join(f, " ")) }
}
