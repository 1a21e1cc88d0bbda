package integration_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/query"
	"github.com/twmb/franz-go/pkg/kadm"
)

// changelogEnds returns the end offset of every changelog partition of
// app's stores.
func changelogEnds(t *testing.T, seeds []string, app string, stores ...string) map[string]map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, seeds))
	var topics []string
	for _, s := range stores {
		topics = append(topics, app+"-"+s+"-changelog")
	}
	ends, err := adm.ListEndOffsets(context.Background(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out
}

// TestStandbyFailover runs two instances with StandbyReplicas(1): each
// keeps a caught-up copy of the other's tasks. One crashes; the other
// takes its tasks over and opens them without replaying their changelogs,
// and every count is right.
func TestStandbyFailover(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 4)
	tr := makeQueryInput(2000, 20000, 13)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), tr.recs...)
	topo := queryTopology(t)
	dir := t.TempDir()
	start := func(i int) (*kappa.App, func() error) {
		return runApp(t, topo, kappa.AppID("standby"), kappa.Brokers(seeds...), kappa.CommitInterval(100*time.Millisecond),
			kappa.StateDir(filepath.Join(dir, fmt.Sprint(i))), kappa.StandbyReplicas(1), kappa.HTTP("127.0.0.1:0"))
	}
	a, _ := start(0)
	b1, _ := start(1)
	apps := []*kappa.App{a, b1}
	// Both run two tasks and keep standbys of the other two, caught up
	// with the changelogs once the input is counted.
	adm := kadm.NewClient(kafkatest.Client(t, seeds))
	kafkatest.Eventually(t, 90*time.Second, "the input counted and committed", func() bool {
		lag, err := adm.Lag(context.Background(), "standby")
		if err != nil {
			return false
		}
		l := lag["standby"]
		return l.Error() == nil && l.Lag.Total() == 0 && len(l.Lag["words"]) == 4
	})
	var ends map[string]map[int32]int64
	kafkatest.Eventually(t, 90*time.Second, "every standby caught up with the changelogs", func() bool {
		ends = changelogEnds(t, seeds, "standby", "counts", "per-minute")
		for _, app := range apps {
			active, standby := 0, 0
			for _, st := range app.TaskStatus() {
				switch st.State {
				case processor.TaskRunning:
					active++
				case processor.TaskStandby:
					standby++
					var end int64
					for _, parts := range ends {
						end += parts[st.ID.Partition]
					}
					if st.Restored != end {
						return false // not caught up yet
					}
				}
			}
			if active != 2 || standby != 2 {
				return false
			}
		}
		return true
	})
	// Every instance knows where each key's copies are.
	for k := range tr.counts {
		md, err := b1.Metadata("counts", k)
		if err != nil {
			t.Fatal(err)
		}
		other := a.HTTPAddr()
		if md.Endpoint == a.HTTPAddr() {
			other = b1.HTTPAddr()
		}
		if len(md.Standbys) != 1 || md.Standbys[0] != other {
			t.Errorf("key %s is held by %s, its standby listed on %v, want %s", k, md.Endpoint, md.Standbys, other)
		}
		break
	}
	moved := a.Tasks()
	kill(a)
	kafkatest.Eventually(t, 60*time.Second, "the survivor running all four tasks", func() bool {
		n := 0
		for _, st := range b1.TaskStatus() {
			if st.State == processor.TaskRunning {
				n++
			}
		}
		return n == 4
	})
	var restored, total int64
	for _, st := range b1.TaskStatus() {
		for _, id := range moved {
			if st.ID == id && st.State == processor.TaskRunning {
				restored += st.Restored
			}
		}
	}
	for _, parts := range ends {
		for p, end := range parts {
			for _, id := range moved {
				if id.Partition == p {
					total += end
				}
			}
		}
	}
	t.Logf("the tasks taken over restored %d changelog records of %d (their standbys had the rest)", restored, total)
	if restored > total/10 {
		t.Errorf("the tasks taken over restored %d of their %d changelog records: their standbys did not spare the restore", restored, total)
	}
	kv, err := query.KeyValue[string, int64](b1.Stores(), "counts")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range tr.counts {
		if got, _, err := kv.Get(k); err != nil || got != want {
			t.Errorf("key %s after the failover: %d %v, want %d", k, got, err, want)
		}
	}
}

// TestScaleOutWarmsUp starts a second instance next to one that runs
// every task: no task moves to it before its warm-up copy has caught up,
// so none is unavailable for a full restore, and the tasks that move then
// restore little. Warm-ups need no standbys: it runs with
// StandbyReplicas(1) and with none.
func TestScaleOutWarmsUp(t *testing.T) {
	for _, standbys := range []int{1, 0} {
		t.Run(fmt.Sprintf("standbys=%d", standbys), func(t *testing.T) { scaleOutWarmsUp(t, standbys) })
	}
}

func scaleOutWarmsUp(t *testing.T, standbys int) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 4)
	tr := makeQueryInput(2000, 20000, 17)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), tr.recs...)
	topo := queryTopology(t)
	dir := t.TempDir()
	start := func(i int) *kappa.App {
		app, _ := runApp(t, topo, kappa.AppID("scaleout"), kappa.Brokers(seeds...), kappa.CommitInterval(100*time.Millisecond),
			kappa.StateDir(filepath.Join(dir, fmt.Sprint(i))), kappa.StandbyReplicas(standbys))
		return app
	}
	first := start(0)
	adm := kadm.NewClient(kafkatest.Client(t, seeds))
	kafkatest.Eventually(t, 60*time.Second, "the input counted and committed", func() bool {
		lag, err := adm.Lag(context.Background(), "scaleout")
		l := lag["scaleout"]
		return err == nil && l.Error() == nil && l.Lag.Total() == 0 && len(l.Lag["words"]) == 4
	})
	second := start(1)
	// Until the second instance runs tasks, the first runs all four: no
	// task is ever without a running owner because of the scale-out.
	var unavailable []string
	kafkatest.Eventually(t, 60*time.Second, "two tasks running on each instance", func() bool {
		running := map[processor.TaskID]bool{}
		counts := [2]int{}
		for i, app := range []*kappa.App{first, second} {
			for _, st := range app.TaskStatus() {
				if st.State == processor.TaskRunning {
					running[st.ID] = true
					counts[i]++
				}
				if st.State == processor.TaskRestoring {
					unavailable = append(unavailable, fmt.Sprintf("%s restoring %d/%d", st.ID, st.Restored, st.RestoreTarget))
				}
			}
		}
		return counts == [2]int{2, 2}
	})
	var restored int64
	for _, st := range second.TaskStatus() {
		if st.State == processor.TaskRunning {
			restored += st.Restored
		}
	}
	t.Logf("the tasks that moved restored %d changelog records; seen restoring: %v", restored, unavailable)
	ends := changelogEnds(t, seeds, "scaleout", "counts", "per-minute")
	var total int64
	for _, st := range second.TaskStatus() {
		if st.State == processor.TaskRunning {
			for _, parts := range ends {
				total += parts[st.ID.Partition]
			}
		}
	}
	if restored > total/10 {
		t.Errorf("the tasks that moved to the new instance restored %d of their %d changelog records: they moved before a warm-up", restored, total)
	}
}
