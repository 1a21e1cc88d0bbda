package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestExactlyOnceModelWithFaults counts clicks per article under
// exactly-once through phases of input, each with a fault drawn from a
// seeded random stream at a random point: a rejected output, a failed
// EndTxn, a fenced producer, a record failing under FailFast (the app
// stops, and is started again without the failure), a crash and restart,
// and a revocation mid-commit (a second instance joins, then leaves).
// The counts read committed must in the end equal the brute-force truth
// exactly, each key's committed counts must rise by one at a time, and no
// transaction may be left open.
//
// It runs seeds 1 to 4; KAPPA_EOS_MODEL_SEED runs that one alone, and
// KAPPA_EOS_MODEL_LOG=1 prints the app's warnings.
func TestExactlyOnceModelWithFaults(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4}
	if s := os.Getenv("KAPPA_EOS_MODEL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) { eosModelWithFaults(t, seed) })
	}
}

func eosModelWithFaults(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 18))
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 3)
	kafkatest.CreateTopic(t, seeds, countsOut, 3)
	cl := kafkatest.Client(t, seeds)
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(context.Background(), countsOut)
	if err != nil {
		t.Fatal(err)
	}
	outID := details[countsOut].ID // newer produce requests name topics by ID
	inputs := clicksByArticle(t, 12000, 80)
	// Out of order: shuffle within blocks, so timestamps and keys arrive
	// in a different order than they were made.
	for i := 0; i+100 <= len(inputs); i += 100 {
		rng.Shuffle(100, func(a, c int) { inputs[i+a], inputs[i+c] = inputs[i+c], inputs[i+a] })
	}

	var failKey atomic.Pointer[string] // a key whose next count fails under FailFast
	topo := failingCountTopology(t, true, func(article string, n int64) bool {
		if k := failKey.Load(); k != nil && *k == article {
			failKey.Store(nil)
			return true
		}
		return false
	})
	dir := t.TempDir()
	opts := []kappa.Opt{kappa.AppID(countsApp), kappa.Brokers(seeds...), kappa.Guarantee(kappa.ExactlyOnce),
		kappa.StateDir(dir), kappa.CacheBytes(1), kappa.OnError(kappa.FailFast), kappa.HandleSignals(false),
		kappa.CommitInterval(time.Duration(20+rng.IntN(80)) * time.Millisecond)}
	if os.Getenv("KAPPA_EOS_MODEL_LOG") != "" {
		opts = append(opts, kappa.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	}

	// app is the running instance; errc receives its Run's result.
	var app *kappa.App
	var cancel context.CancelFunc
	var errc chan error
	start := func() {
		t.Helper()
		a, err := kappa.New(topo, opts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, c := context.WithCancel(crashable(context.Background(), a))
		app, cancel, errc = a, c, make(chan error, 1)
		go func() { errc <- a.Run(ctx) }()
	}
	stop := func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(60 * time.Second):
			t.Fatal("the app did not stop within 60s")
			return nil
		}
	}
	start()
	t.Cleanup(func() { cancel() })

	// armOnce makes the broker answer the next request of key that fn
	// picks with the error code, once.
	armOnce := func(key kmsg.Key, pick func(kmsg.Request) bool, answer func(kmsg.Request) kmsg.Response) {
		b.Cluster().ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			if !pick(req) {
				b.Cluster().KeepControl()
				return nil, nil, false
			}
			b.Cluster().DropControl() // once only (KeepControl above kept it so far)
			return answer(req), nil, true
		})
	}
	// waitCommit waits until the app commits past commits, failing the
	// test if it stops.
	waitCommit := func(p int, commits int64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for app.Commits() <= commits {
			select {
			case err := <-errc:
				t.Fatalf("phase %d: the app stopped with %v", p, err)
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("phase %d: no commit within 60s", p)
			}
		}
	}
	faults := []string{"output rejected", "end txn fails", "producer fenced", "fail-fast record", "crash", "revocation"}
	const phases = 12
	per := len(inputs) / phases
	for p := range phases {
		fault := faults[rng.IntN(len(faults))]
		chunk := inputs[p*per : (p+1)*per]
		at := rng.IntN(len(chunk))
		kafkatest.Produce(t, cl, chunk[:at]...)
		t.Logf("phase %d: %s after %d of %d records", p, fault, at, len(chunk))
		switch fault {
		case "output rejected":
			armOnce(kmsg.Produce, func(req kmsg.Request) bool {
				for _, tp := range req.(*kmsg.ProduceRequest).Topics {
					if tp.Topic == countsOut || tp.TopicID == outID {
						return true
					}
				}
				return false
			}, func(req kmsg.Request) kmsg.Response {
				return kafkatest.ProduceErrorResponse(req.(*kmsg.ProduceRequest), kerr.InvalidRecord.Code)
			})
		case "end txn fails":
			armOnce(kmsg.EndTxn, func(req kmsg.Request) bool { return req.(*kmsg.EndTxnRequest).Commit },
				func(req kmsg.Request) kmsg.Response {
					resp := req.ResponseKind().(*kmsg.EndTxnResponse)
					resp.ErrorCode = kerr.TransactionAbortable.Code
					return resp
				})
		case "producer fenced":
			txns, err := adm.ListTransactions(context.Background(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, tx := range txns.Sorted() {
				if strings.HasPrefix(tx.TxnID, countsApp+"-") {
					zombie := kafkatest.Client(t, seeds, kgo.TransactionalID(tx.TxnID))
					ctx, c := context.WithTimeout(context.Background(), 10*time.Second)
					if _, _, err := zombie.ProducerID(ctx); err != nil {
						t.Fatalf("fencing %s: %v", tx.TxnID, err)
					}
					c()
					zombie.Close()
				}
			}
		case "fail-fast record":
			var c click
			if err := json.Unmarshal(chunk[at+rng.IntN(len(chunk)-at)].Value, &c); err != nil {
				t.Fatal(err)
			}
			failKey.Store(&c.Article)
		case "crash":
			kill(app)
			if err := stop(); err != nil {
				t.Fatalf("phase %d: the crashed app returned %v", p, err)
			}
			start()
		case "revocation":
			app2, stop2 := runApp(t, topo, append(opts[:len(opts):len(opts)], kappa.StateDir(t.TempDir()))...)
			kafkatest.Eventually(t, 60*time.Second, "the second instance to take tasks", func() bool { return len(app2.Tasks()) > 0 })
			rest := chunk[at:]
			kafkatest.Produce(t, cl, rest[:len(rest)/2]...)
			chunk, at = rest[len(rest)/2:], 0
			if err := stop2(); err != nil {
				t.Fatalf("phase %d: the second instance stopped with %v", p, err)
			}
		}
		kafkatest.Produce(t, cl, chunk[at:]...)
		if fault != "fail-fast record" {
			// The next fault comes after a commit: five failed
			// transactions in a row stop the app by design.
			waitCommit(p, app.Commits())
			continue
		}
		// The failing record stops the app: start it again (the failure
		// fired once and is disarmed).
		kafkatest.Eventually(t, 60*time.Second, "the armed record to fail", func() bool { return failKey.Load() == nil })
		select {
		case err := <-errc:
			var re *processor.RecordError
			if !errors.As(err, &re) {
				t.Fatalf("phase %d: the app stopped with %v, want a RecordError", p, err)
			}
			start()
		case <-time.After(60 * time.Second):
			t.Fatalf("phase %d: the app still runs 60s after a record failed under FailFast", p)
		}
		waitCommit(p, 0)
	}
	failKey.Store(nil)
	want := truthCounts(inputs)
	waitCommittedCounts(t, seeds, want)
	if err := stop(); err != nil {
		t.Fatalf("the app stopped with %v", err)
	}
	checkCommittedSequences(t, seeds, want)
	txns, err := adm.DescribeTransactions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range txns.Sorted() {
		if tx.State == "Ongoing" {
			t.Errorf("transaction %s left open once the app stopped", tx.TxnID)
		}
	}
}
