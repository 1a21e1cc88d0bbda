// Command smokeapp runs one instance of the smoke app (package
// internal/smoke) as its own OS process, for the multi-process crash tests
// in the smoke_test.go of internal/integration. Several instances with the same
// -app-id form one consumer group.
//
// It runs until SIGTERM or SIGINT, then stops gracefully (a final commit,
// leaving the group) and exits 0; a second signal exits at once. SIGKILL
// is the crash the tests inflict. Run errors exit 1.
//
// Each time the instance's tasks or their readiness change, it prints a
// status line on stdout (see smoke.Status), for example
//
//	smokeapp status instance=a ready=true tasks=0_1,1_1
//
// Logs go to stderr.
//
// Usage:
//
//	smokeapp -brokers 127.0.0.1:9092 -app-id smoke -state-dir /tmp/a -instance a [-guarantee exactly-once]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/internal/smoke"
	"github.com/kappa-streams/kappa/processor"
)

func main() { os.Exit(run()) }

// run parses the flags, runs the app and returns the exit code.
func run() int {
	brokers := flag.String("brokers", "", "comma-separated seed brokers `host:port` (required)")
	appID := flag.String("app-id", "smoke", "application `ID`: the consumer group and internal-topic prefix")
	stateDir := flag.String("state-dir", "", "`DIR` for the local stores (required; another instance's or a deleted one is fine)")
	commit := flag.Duration("commit-interval", 100*time.Millisecond, "how often to commit (under exactly-once: how long each transaction lasts); 100ms is Kappa's default under exactly-once")
	session := flag.Duration("session-timeout", 6*time.Second, "consumer group session timeout: how soon others take over a killed instance's tasks (the embedded broker's minimum is 6s)")
	instance := flag.String("instance", "", "`NAME` of this instance in status lines and logs (required)")
	guarantee := flag.String("guarantee", string(smoke.AtLeastOnce), "processing guarantee: at-least-once or exactly-once")
	logLevel := flag.String("log-level", "info", "log level on stderr: debug, info, warn or error")
	standbys := flag.Int("standby-replicas", 0, "warm copies of each task kept on other instances (kappa.StandbyReplicas)")
	static := flag.Bool("static", false, "join as a static member whose instance ID is -instance (kappa.InstanceID)")
	flag.Parse()

	var problems []string
	if *brokers == "" {
		problems = append(problems, "-brokers is required")
	}
	if *stateDir == "" {
		problems = append(problems, "-state-dir is required")
	}
	if *instance == "" {
		problems = append(problems, "-instance is required")
	}
	g, err := smoke.ParseGuarantee(*guarantee)
	if err != nil {
		problems = append(problems, "-guarantee: "+err.Error())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		problems = append(problems, "-log-level: "+err.Error())
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "smokeapp:", p)
		}
		flag.Usage()
		return 2
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("instance", *instance)
	topo, err := smoke.Topology()
	if err != nil {
		log.Error("topology", "error", err)
		return 1
	}
	opts := []kappa.Opt{
		kappa.AppID(*appID),
		kappa.Brokers(strings.Split(*brokers, ",")...),
		kappa.StateDir(*stateDir),
		kappa.CommitInterval(*commit),
		kappa.SessionTimeout(*session),
		kappa.Logger(log),
		kappa.StandbyReplicas(*standbys),
	}
	// At-least-once is Kappa's default; the commit interval is passed under
	// both guarantees, so that the flag, not Kappa's default, decides it.
	if g == smoke.ExactlyOnce {
		opts = append(opts, kappa.Guarantee(kappa.ExactlyOnce))
	}
	if *static {
		opts = append(opts, kappa.InstanceID(*instance))
	}
	app, err := kappa.New(topo, opts...)
	if err != nil {
		log.Error("configuration", "error", err)
		return 2
	}

	ctx, cancel := context.WithCancel(context.Background())
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		report(ctx, app, *instance)
	}()
	log.Info("smokeapp starting", "pid", os.Getpid(), "guarantee", g, "brokers", *brokers, "state_dir", *stateDir)
	err = app.Run(ctx) // stops gracefully on SIGTERM and SIGINT
	cancel()
	<-reported
	if err != nil {
		log.Error("smokeapp stopped", "error", err)
		fmt.Fprintf(os.Stderr, "smokeapp: instance %s: %v\n", *instance, err)
		return 1
	}
	log.Info("smokeapp stopped")
	return 0
}

// report prints a status line whenever the instance's tasks or their
// readiness change, until ctx is done. It polls the app, which is cheap:
// the driver waits on the lines, not on time.
func report(ctx context.Context, app *kappa.App, instance string) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		s := smoke.Status{Instance: instance}
		active := 0
		for _, st := range app.TaskStatus() {
			if st.State == processor.TaskStandby {
				if s.Standbys == nil {
					s.Standbys = map[string]int64{}
				}
				s.Standbys[st.ID.String()] = st.Restored
				continue
			}
			active++
			s.Tasks = append(s.Tasks, st.ID.String())
			s.Ready = (active == 1 || s.Ready) && st.Ready
			s.Restored += st.Restored
		}
		slices.Sort(s.Tasks)
		if line := s.String(); line != last {
			fmt.Println(line)
			last = line
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
