package runner

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func ids(subs, parts int) []processor.TaskID {
	var out []processor.TaskID
	for s := range subs {
		for p := range parts {
			out = append(out, processor.TaskID{SubTopology: s, Partition: int32(p)})
		}
	}
	return out
}

func counts(owner map[processor.TaskID]int, n int) []int {
	c := make([]int, n)
	for _, m := range owner {
		c[m]++
	}
	return c
}

func balanced(t *testing.T, owner map[processor.TaskID]int, tasks []processor.TaskID, n int) {
	t.Helper()
	if len(owner) != len(tasks) {
		t.Fatalf("%d of %d tasks assigned", len(owner), len(tasks))
	}
	c := counts(owner, n)
	lo, hi := len(tasks), 0
	for _, x := range c {
		lo, hi = min(lo, x), max(hi, x)
	}
	if hi-lo > 1 {
		t.Fatalf("unbalanced: %v", c)
	}
}

func TestAssignTasksBalancedAndSticky(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		tasks := ids(1+rng.IntN(3), 1+rng.IntN(12))
		n := 1 + rng.IntN(6)
		first := assignTasks(tasks, n, func(processor.TaskID) (int, bool) { return 0, false })
		balanced(t, first, tasks, n)
		// Same members again: nothing moves.
		again := assignTasks(tasks, n, func(id processor.TaskID) (int, bool) { m, ok := first[id]; return m, ok })
		for id, m := range first {
			if again[id] != m {
				t.Fatalf("trial %d: task %v moved from %d to %d with no membership change", trial, id, m, again[id])
			}
		}
		// One member joins: only the minimum needed moves, and only to it.
		joined := assignTasks(tasks, n+1, func(id processor.TaskID) (int, bool) { m, ok := first[id]; return m, ok })
		balanced(t, joined, tasks, n+1)
		moved := 0
		for id, m := range first {
			if joined[id] != m {
				moved++
				if joined[id] != n {
					t.Fatalf("trial %d: task %v moved between old members (%d→%d)", trial, id, m, joined[id])
				}
			}
		}
		if want := counts(joined, n+1)[n]; moved != want {
			t.Fatalf("trial %d: %d tasks moved, the new member got %d", trial, moved, want)
		}
	}
}

// member fakes a JoinGroup member announcing its owned partitions.
func member(b *TaskBalancer, id string, owned map[string][]int32, gen int32) kmsg.JoinGroupResponseMember {
	m := kmsg.NewJoinGroupResponseMember()
	m.MemberID = id
	m.ProtocolMetadata = b.JoinGroupMetadata([]string{"app-rep-repartition", "left", "right"}, owned, gen)
	return m
}

// copartTopology has two sub-topologies: left and right read together,
// and a repartition topic read by the second.
func copartTopology(t *testing.T) *processor.Topology {
	b := processor.NewBuilder()
	src := b.AddSource("src", []processor.TopicRef{{Name: "left"}, {Name: "right"}}, "", nil)
	b.AddSink("to-rep", &processor.TopicRef{Name: "rep-repartition", Internal: true}, "", nil, src)
	b.AddInternalTopic(processor.InternalTopic{Ref: processor.TopicRef{Name: "rep-repartition", Internal: true}})
	b.AddSource("rep", []processor.TopicRef{{Name: "rep-repartition", Internal: true}}, "", nil)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestBalanceCoPartitions(t *testing.T) {
	topo := copartTopology(t)
	bal := NewTaskBalancer(topo, "app")
	topics := map[string]int32{"left": 6, "right": 6, "app-rep-repartition": 6}
	balance := func(members []kmsg.JoinGroupResponseMember) map[string]map[string][]int32 {
		t.Helper()
		gmb, _, err := bal.MemberBalancer(members)
		if err != nil {
			t.Fatal(err)
		}
		into, err := gmb.(*kgo.ConsumerBalancer).BalanceOrError(topics)
		if err != nil {
			t.Fatal(err)
		}
		return into.(withUserData).plan.AsMemberIDMap()
	}
	ms := []kmsg.JoinGroupResponseMember{member(bal, "a", nil, -1), member(bal, "b", nil, -1), member(bal, "c", nil, -1)}
	plan := balance(ms)
	owners := map[string]string{}
	for m, assigned := range plan {
		if fmt.Sprint(assigned["left"]) != fmt.Sprint(assigned["right"]) {
			t.Fatalf("member %s: left %v right %v: co-partitions split", m, assigned["left"], assigned["right"])
		}
		if len(assigned["left"]) != 2 || len(assigned["app-rep-repartition"]) != 2 {
			t.Fatalf("member %s got %v, want 2 partitions of each sub-topology", m, assigned)
		}
		for topic, ps := range assigned {
			for _, p := range ps {
				key := fmt.Sprint(topic, p)
				if prev, dup := owners[key]; dup {
					t.Fatalf("%s assigned to %s and %s", key, prev, m)
				}
				owners[key] = m
			}
		}
	}
	if len(owners) != 18 {
		t.Fatalf("%d of 18 partitions assigned", len(owners))
	}
	// c leaves: a and b keep what they had (sticky) and split c's tasks.
	ms2 := []kmsg.JoinGroupResponseMember{member(bal, "a", plan["a"], 1), member(bal, "b", plan["b"], 1)}
	plan2 := balance(ms2)
	for _, m := range []string{"a", "b"} {
		for topic, ps := range plan[m] {
			for _, p := range ps {
				if !contains(plan2[m][topic], p) {
					t.Fatalf("member %s lost %s/%d when c left", m, topic, p)
				}
			}
		}
		if fmt.Sprint(plan2[m]["left"]) != fmt.Sprint(plan2[m]["right"]) {
			t.Fatalf("after c left, member %s: left %v right %v", m, plan2[m]["left"], plan2[m]["right"])
		}
	}
}

func contains(ps []int32, p int32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// TestAssignStandbysRandomShapes places standbys on random clusters: every
// eligible task gets min(replicas, members-1) copies on distinct members
// other than its owner, no member holds much more than an even share, copies
// stay where they are when nothing changed, and a task whose owner is gone
// goes to its most caught-up copy.
func TestAssignStandbysRandomShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := range 500 {
		n := 1 + rng.IntN(6)
		replicas := rng.IntN(3)
		tasks := ids(1+rng.IntN(3), 1+rng.IntN(12))
		eligible := func(id processor.TaskID) bool { return id.SubTopology != 1 } // sub-topology 1 has no stores
		owner := assignTasks(tasks, n, func(processor.TaskID) (int, bool) { return 0, false })
		// Copies some members kept before, with random lags.
		held := map[processor.TaskID]map[int]int64{}
		for _, id := range tasks {
			for m := range n {
				if rng.IntN(4) == 0 {
					if held[id] == nil {
						held[id] = map[int]int64{}
					}
					held[id][m] = rng.Int64N(100)
				}
			}
		}
		sb := assignStandbys(tasks, eligible, owner, n, replicas, func(id processor.TaskID) map[int]int64 { return held[id] })
		want := min(replicas, n-1)
		placed := 0
		per := make([]int, n)
		for _, id := range tasks {
			got := sb[id]
			if !eligible(id) {
				if len(got) != 0 {
					t.Fatalf("trial %d: task %s has no stores but standbys %v", trial, id, got)
				}
				continue
			}
			if len(got) != want {
				t.Fatalf("trial %d: task %s has %d standbys, want %d (%d members, %d replicas)", trial, id, len(got), want, n, replicas)
			}
			seen := map[int]bool{}
			for _, m := range got {
				if m == owner[id] || seen[m] {
					t.Fatalf("trial %d: task %s: standbys %v, owner %d", trial, id, got, owner[id])
				}
				seen[m] = true
				per[m]++
			}
			placed += want
		}
		share := (placed + n - 1) / n
		for m, c := range per {
			if c > share+want {
				t.Fatalf("trial %d: member %d holds %d standbys, an even share is %d", trial, m, c, share)
			}
		}
		// Nothing changed: the same placement.
		again := map[processor.TaskID]map[int]int64{}
		for id, ms := range sb {
			again[id] = map[int]int64{}
			for _, m := range ms {
				again[id][m] = 0
			}
		}
		sb2 := assignStandbys(tasks, eligible, owner, n, replicas, func(id processor.TaskID) map[int]int64 { return again[id] })
		for _, id := range tasks {
			if fmt.Sprint(slices.Sorted(slices.Values(sb[id]))) != fmt.Sprint(slices.Sorted(slices.Values(sb2[id]))) {
				t.Fatalf("trial %d: task %s moved from %v to %v with nothing changed", trial, id, sb[id], sb2[id])
			}
		}
	}
}

// TestOwnerGoneGoesToBestCopy checks that a task whose owner left the
// group goes to the member with its least lagging copy.
func TestOwnerGoneGoesToBestCopy(t *testing.T) {
	tasks := ids(1, 6)
	copies := map[processor.TaskID]map[int]int64{
		tasks[0]: {1: 50, 2: 3},
		tasks[1]: {0: 0, 2: 0},
		tasks[2]: {1: 7},
	}
	owner := assignTasks(tasks, 3, func(id processor.TaskID) (int, bool) { return bestCopy(copies[id]) })
	for id, want := range map[processor.TaskID]int{tasks[0]: 2, tasks[1]: 0, tasks[2]: 1} {
		if owner[id] != want {
			t.Errorf("task %s went to member %d, its best copy is on %d", id, owner[id], want)
		}
	}
}

// TestHoldForWarmup checks that a task the balance would move to a member
// without a caught-up copy stays with its owner while the member warms one
// up, and moves when the copy is close enough.
func TestHoldForWarmup(t *testing.T) {
	tasks := ids(2, 2)
	a, b, c, d := tasks[0], tasks[1], tasks[2], tasks[3]
	eligible := func(id processor.TaskID) bool { return id.SubTopology == 0 } // sub-topology 1 has no stores
	owner := map[processor.TaskID]int{a: 1, b: 1, c: 1, d: 1}
	prev := map[processor.TaskID]int{a: 0, b: 0, c: 0} // d is new
	copies := map[processor.TaskID]map[int]int64{b: {1: AcceptableLag}}
	warm := holdForWarmup(tasks, eligible, owner, func(id processor.TaskID) (int, bool) { m, ok := prev[id]; return m, ok },
		func(id processor.TaskID) map[int]int64 { return copies[id] }, 2)
	if owner[a] != 0 || warm[a] != 1 {
		t.Errorf("task a without a copy on member 1: owner %d, warm-up %v; want it kept on 0 and warmed on 1", owner[a], warm)
	}
	if owner[b] != 1 {
		t.Errorf("task b with a caught-up copy on member 1 stayed on %d", owner[b])
	}
	if owner[c] != 1 || owner[d] != 1 {
		t.Errorf("tasks without stores or without an owner were held: %v", owner)
	}
	if len(warm) != 1 {
		t.Errorf("warm-ups %v, want only task a", warm)
	}
}

// TestWarmupLimit checks that at most the limit of tasks warm up at once,
// the others staying with their owners without a copy, and that a limit
// of 0 moves every task at once.
func TestWarmupLimit(t *testing.T) {
	tasks := ids(1, 5)
	eligible := func(processor.TaskID) bool { return true }
	prevOwner := func(processor.TaskID) (int, bool) { return 0, true }
	none := func(processor.TaskID) map[int]int64 { return nil }
	owner := map[processor.TaskID]int{}
	for _, id := range tasks {
		owner[id] = 1
	}
	warm := holdForWarmup(tasks, eligible, owner, prevOwner, none, 2)
	held := 0
	for _, id := range tasks {
		if owner[id] == 0 {
			held++
		}
	}
	if len(warm) != 2 || held != 5 {
		t.Errorf("limit 2: %d warm-ups, %d tasks kept with their owner; want 2 and all 5", len(warm), held)
	}
	for _, id := range tasks {
		owner[id] = 1
	}
	if warm := holdForWarmup(tasks, eligible, owner, prevOwner, none, 0); len(warm) != 0 || owner[tasks[0]] != 1 {
		t.Errorf("limit 0: warm-ups %v, owner of %s %d; want none, and the task moved", warm, tasks[0], owner[tasks[0]])
	}
}

// TestLagsFromCurrentEnds checks that the leader computes copies' lags
// from their reported positions and the changelogs' ends when it
// balances: a position reported long ago (a static member's replayed
// metadata) gives the lag of now, never a smaller one, and a copy whose
// position or task end is unknown counts as not caught up.
func TestLagsFromCurrentEnds(t *testing.T) {
	a := processor.TaskID{SubTopology: 0, Partition: 0}
	b := processor.TaskID{SubTopology: 0, Partition: 1}
	bal := &TaskBalancer{ChangelogEnds: func(ids []processor.TaskID) map[processor.TaskID]int64 {
		return map[processor.TaskID]int64{a: 50_000} // b's ends cannot be read
	}}
	got := bal.lags(map[processor.TaskID]map[int]int64{
		a: {0: 49_990, 1: 100, 2: -1},
		b: {0: 7},
	})
	want := map[processor.TaskID]map[int]int64{
		a: {0: 10, 1: 49_900, 2: notCaughtUp},
		b: {0: notCaughtUp},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lags %v, want %v", got, want)
	}
}
