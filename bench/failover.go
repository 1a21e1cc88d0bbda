// W7: failover. Two Kappa instances, as separate processes, share one
// task whose store holds N keys; the instance running it is SIGKILLed,
// and the benchmark times how long the survivor takes to have the task
// running: with a standby copy on the survivor (StandbyReplicas(1))
// against without, in the same run.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{name: "failover", summary: "W7: time until a killed instance's task runs on the survivor, with a standby against without", run: runFailover})
	register(command{name: "failover-instance", summary: "(internal) one app instance of the failover benchmark", run: runFailoverInstance})
}

const (
	failoverApp   = "bench-failover"
	failoverTopic = "failover-in"
	// failoverSession is the instances' session timeout: how long the
	// group takes to notice the killed instance, in both modes.
	failoverSession = time.Second
)

func runFailover(args []string) error {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	keys := fs.Int("keys", 1000000, "distinct keys in the task's store")
	runs := fs.Int("runs", 1, "runs per mode")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type result struct {
		total, restore time.Duration
		restored       int64
	}
	results := map[int][]result{}
	for run := range *runs {
		for _, standbys := range []int{1, 0} {
			total, restore, restored, err := failoverRun(*keys, standbys)
			if err != nil {
				return fmt.Errorf("run %d, %d standbys: %w", run+1, standbys, err)
			}
			logf("run %d, %d standby: task running %v after the SIGKILL (%v of it opening and restoring, %d records restored)",
				run+1, standbys, total.Round(time.Millisecond), restore.Round(time.Millisecond), restored)
			results[standbys] = append(results[standbys], result{total, restore, restored})
		}
	}
	med := func(rs []result, f func(result) time.Duration) time.Duration {
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = f(r)
		}
		return latencies{d: ds}.p(0.5)
	}
	fmt.Printf("W7 failover: one task, a count store of %d keys, 2 instances as processes, session timeout %v, %d run(s) per mode\n\n",
		*keys, failoverSession, *runs)
	fmt.Printf("%s\n\n", machineInfo())
	fmt.Println("| mode | SIGKILL → task running | of which opening and restoring | changelog records restored |")
	fmt.Println("|---|---:|---:|---:|")
	for _, standbys := range []int{1, 0} {
		rs := results[standbys]
		name := "no standby (restore from the changelog)"
		if standbys > 0 {
			name = "StandbyReplicas(1)"
		}
		fmt.Printf("| %s | %v | %v | %d |\n", name, med(rs, func(r result) time.Duration { return r.total }).Round(time.Millisecond),
			med(rs, func(r result) time.Duration { return r.restore }).Round(time.Millisecond), rs[len(rs)/2].restored)
	}
	with := med(results[1], func(r result) time.Duration { return r.total })
	without := med(results[0], func(r result) time.Duration { return r.total })
	withR := med(results[1], func(r result) time.Duration { return r.restore })
	withoutR := med(results[0], func(r result) time.Duration { return r.restore })
	fmt.Printf("\nRESULT failover standby/none=%.2f restore-standby/none=%.2f\n", float64(with)/float64(without), float64(withR)/float64(withoutR))
	return nil
}

// instanceStatus is what a failover instance reports on GET /status.
type instanceStatus struct {
	Processed int64                  `json:"processed"`
	Tasks     []processor.TaskStatus `json:"tasks"`
}

// failoverRun runs one kill and returns how long the survivor took.
func failoverRun(keys, standbys int) (total, restore time.Duration, restored int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b, err := embedded.New(embedded.MinSessionTimeout(200 * time.Millisecond))
	if err != nil {
		return 0, 0, 0, err
	}
	defer b.Close()
	seeds := b.Addrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(failoverTopic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return 0, 0, 0, err
	}
	defer cl.Close()
	if err := broker.NewAdmin(cl).EnsureTopics(ctx, broker.TopicSpec{Name: failoverTopic, Partitions: 1}); err != nil {
		return 0, 0, 0, err
	}
	for i := range keys {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprintf("key-%09d", i)), Value: []byte("v")}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, 0, 0, err
	}
	dir, err := os.MkdirTemp("", "kappa-bench-failover")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return 0, 0, 0, err
	}
	start := func(name string) (*exec.Cmd, string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(self, "failover-instance", "-brokers", seeds[0], "-state-dir", filepath.Join(dir, name),
			"-standbys", strconv.Itoa(standbys), "-http", addr)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, "", err
		}
		return cmd, addr, nil
	}
	a, addrA, err := start("a")
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { a.Process.Kill(); a.Wait() }()
	adm := kadm.NewClient(cl)
	logf("%d standbys: instance a counting %d keys", standbys, keys)
	if err := waitFor(ctx, 5*time.Minute, func() bool {
		lag, err := adm.Lag(ctx, failoverApp)
		l := lag[failoverApp]
		return err == nil && l.Error() == nil && len(l.Lag[failoverTopic]) == 1 && l.Lag.Total() == 0
	}); err != nil {
		return 0, 0, 0, fmt.Errorf("instance a did not count and commit the input: %w", err)
	}
	_ = addrA
	bcmd, addrB, err := start("b")
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { bcmd.Process.Kill(); bcmd.Wait() }()
	// b joins; with a standby, it waits until the copy is caught up.
	ends, err := adm.ListEndOffsets(ctx, failoverApp+"-counts-changelog")
	if err != nil {
		return 0, 0, 0, err
	}
	end := ends[failoverApp+"-counts-changelog"][0].Offset
	logf("%d standbys: instance b joining (changelog end %d)", standbys, end)
	if err := waitFor(ctx, 5*time.Minute, func() bool {
		st, err := getStatus(addrB)
		if err != nil {
			return false
		}
		if standbys == 0 {
			return true // joined and answering: it has nothing to keep
		}
		for _, t := range st.Tasks {
			if t.State == processor.TaskStandby && t.Restored == end {
				return true
			}
		}
		return false
	}); err != nil {
		return 0, 0, 0, fmt.Errorf("instance b did not catch up: %w", err)
	}
	if standbys == 0 {
		// Let b's join settle: a keeps the task (sticky), b gets none.
		if err := waitFor(ctx, time.Minute, func() bool {
			d, err := adm.DescribeGroups(ctx, failoverApp)
			return err == nil && len(d[failoverApp].Members) == 2 && d[failoverApp].State == "Stable"
		}); err != nil {
			return 0, 0, 0, err
		}
	}
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		return 0, 0, 0, err
	}
	killed := time.Now()
	a.Wait()
	var assigned time.Time
	err = waitFor(ctx, 5*time.Minute, func() bool {
		st, err := getStatus(addrB)
		if err != nil {
			return false
		}
		for _, t := range st.Tasks {
			if t.State == processor.TaskStandby {
				continue
			}
			if assigned.IsZero() {
				assigned = time.Now()
			}
			if t.Ready {
				restored = t.Restored
				return true
			}
		}
		return false
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("instance b never ran the task: %w", err)
	}
	now := time.Now()
	return now.Sub(killed), now.Sub(assigned), restored, nil
}

func getStatus(addr string) (instanceStatus, error) {
	var st instanceStatus
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitFor polls cond every 5ms until it holds or within passes.
func waitFor(ctx context.Context, within time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// runFailoverInstance runs one instance until SIGTERM or SIGKILL.
func runFailoverInstance(args []string) error {
	fs := flag.NewFlagSet("failover-instance", flag.ContinueOnError)
	seeds := fs.String("brokers", "", "broker address")
	dir := fs.String("state-dir", "", "state directory")
	standbys := fs.Int("standbys", 0, "standby replicas")
	addr := fs.String("http", "", "HTTP listener")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sb := stream.NewBuilder()
	stream.From(sb, failoverTopic, codec.String(), codec.Bytes()).GroupByKey().Count(stream.Materialized("counts"))
	topo, err := sb.Build()
	if err != nil {
		return err
	}
	var app *kappa.App
	app, err = kappa.New(topo, kappa.AppID(failoverApp), kappa.Brokers(*seeds), kappa.StateDir(*dir),
		kappa.StandbyReplicas(*standbys), kappa.HTTP(*addr), kappa.HandleSignals(false),
		kappa.CommitInterval(100*time.Millisecond),
		kappa.SessionTimeout(failoverSession), kappa.ClientOpts(kgo.HeartbeatInterval(100*time.Millisecond)),
		kappa.Handle("GET /status", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			json.NewEncoder(w).Encode(instanceStatus{Processed: app.Processed(), Tasks: app.TaskStatus()})
		})))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return app.Run(ctx)
}
