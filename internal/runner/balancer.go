package runner

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"sync"

	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BalancerProtocol is the group protocol name Kappa members join with. All
// members of one application must use it.
const BalancerProtocol = "kappa-tasks"

// TaskBalancer is a franz-go GroupBalancer that assigns tasks, not topics:
// partition p of every input of a sub-topology goes to the same member, as
// joins and co-partitioned aggregations require. It is cooperative and
// sticky: a task stays with its owner unless balance requires a move, and
// only moved tasks are revoked.
//
// Each member's metadata carries its query endpoint (kappa.ApplicationServer)
// as user data, and the leader sends every member, with its assignment,
// which endpoint runs each task: so any instance can route a key to the
// instance that holds it, as Kafka Streams' application.server does.
type TaskBalancer struct {
	appID string
	topo  *processor.Topology
	// subOf maps each resolved input topic to its sub-topology.
	subOf map[string]int
	// Endpoint is this member's query endpoint, "" if it has none.
	Endpoint string
	// OnBalance is called on the leader with the task assignment it
	// computed, for tests and logs. May be nil.
	OnBalance func(map[string][]processor.TaskID)
	// OnHosts is called with the endpoint of every task's owner, and of
	// the members keeping standby copies of it, each time this member gets
	// an assignment. May be nil.
	OnHosts func(active map[processor.TaskID]string, standby map[processor.TaskID][]string)
	// Warmups bounds the warm-up copies the leader assigns at once
	// (kappa.MaxWarmupReplicas); 0 moves tasks without warming them up.
	// Warm-ups do not need standbys.
	Warmups int
	// Replicas is how many standby copies of each task with persistent,
	// logged stores the leader places on other members
	// (kappa.StandbyReplicas).
	Replicas int
	// Process identifies this member's process in the assignment's list
	// of standbys.
	Process string
	// StandbyPositions, when set, reports the standby tasks this member
	// keeps and the changelog offsets each has reached, summed over its
	// stores (-1 before its first catch-up). The leader turns them into
	// lags against the changelogs' ends at the time it balances
	// (ChangelogEnds), and gives a task whose owner is gone to its most
	// caught-up copy.
	StandbyPositions func() map[processor.TaskID]int64
	// ChangelogEnds, on the leader, returns the end offsets of the tasks'
	// changelogs, summed per task; a task it cannot read is missing, and
	// its copies count as not caught up.
	ChangelogEnds func(ids []processor.TaskID) map[processor.TaskID]int64
	// OnStandbys is called with this member's standby tasks, and which of
	// them are warm-ups, each time it gets an assignment. May be nil.
	OnStandbys func(standbys, warmups []processor.TaskID)
	// standbyable marks the sub-topologies whose tasks have persistent,
	// logged stores: the only ones a standby helps.
	standbyable map[int]bool
	// MetaFile, for a static member (kappa.InstanceID), keeps the member
	// metadata of its last join: see JoinGroupMetadata. "" for dynamic
	// members.
	MetaFile string

	metaMu  sync.Mutex
	rejoin  bool // the first join of this process is done
	metaLog func(msg string, args ...any)
}

// memberData is the user data of a member's metadata.
type memberData struct {
	V        int    `json:"v"`
	Endpoint string `json:"endpoint,omitempty"`
	Process  string `json:"process,omitempty"`
	// Positions holds the standby tasks the member keeps, with the
	// changelog offsets each reached, summed (-1: not caught up yet). A
	// static member that restarts may rejoin with the metadata of its last
	// join (see JoinGroupMetadata): its positions are then older than its
	// copies, which only move forward, so the lags the leader computes
	// from them are never smaller than the copies' real lags.
	Positions map[string]int64 `json:"positions,omitempty"`
}

// assignmentData is the user data of every member's assignment: the
// endpoint of each task's owner, for the members that have one.
type assignmentData struct {
	V     int                 `json:"v"`
	Hosts map[string][]string `json:"hosts,omitempty"` // endpoint → task IDs
	// Standbys holds each member's standby tasks, by process.
	Standbys map[string][]string `json:"standbys,omitempty"`
	// Warmups holds, by process, the standbys that are warm-ups: copies
	// of tasks the balance wants moved to that member once it is caught
	// up. The member asks for a rebalance when one catches up.
	Warmups map[string][]string `json:"warmups,omitempty"`
	// StandbyHosts holds the standby tasks of the members that have an
	// endpoint, by endpoint, for the query metadata.
	StandbyHosts map[string][]string `json:"standbyHosts,omitempty"`
}

// AcceptableLag is how many changelog records a member's copy of a task
// may be behind for the task to move to it. A task would move to a member
// whose copy lags more (or that has none) stays with its owner, and the
// member warms a copy up first (KIP-441).
const AcceptableLag = 10000

// NewTaskBalancer returns a balancer for topo running as appID.
func NewTaskBalancer(topo *processor.Topology, appID string) *TaskBalancer {
	b := &TaskBalancer{appID: appID, topo: topo, subOf: make(map[string]int), standbyable: make(map[int]bool)}
	for ref, sub := range topo.Sources() {
		b.subOf[ref.Resolve(appID)] = sub
	}
	for _, sub := range topo.SubTopologies() {
		for _, sp := range sub.Stores {
			if sp.Logging && !sp.InMemory {
				b.standbyable[sub.ID] = true
			}
		}
	}
	return b
}

// lags turns the copies' positions into lags against the changelogs'
// current ends: a copy whose position or task end is unknown counts as
// not caught up.
func (b *TaskBalancer) lags(positions map[processor.TaskID]map[int]int64) map[processor.TaskID]map[int]int64 {
	var ends map[processor.TaskID]int64
	if b.ChangelogEnds != nil && len(positions) > 0 {
		ends = b.ChangelogEnds(slices.Collect(maps.Keys(positions)))
	}
	held := make(map[processor.TaskID]map[int]int64, len(positions))
	for id, copies := range positions {
		held[id] = make(map[int]int64, len(copies))
		for m, pos := range copies {
			lag := int64(notCaughtUp)
			if end, ok := ends[id]; ok && pos >= 0 {
				lag = max(0, end-pos)
			}
			held[id][m] = lag
		}
	}
	return held
}

// ProtocolName implements kgo.GroupBalancer.
func (*TaskBalancer) ProtocolName() string { return BalancerProtocol }

// IsCooperative implements kgo.GroupBalancer: rebalances revoke only the
// tasks that move.
func (*TaskBalancer) IsCooperative() bool { return true }

// JoinGroupMetadata implements kgo.GroupBalancer.
func (b *TaskBalancer) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	for _, topic := range slices.Sorted(mapKeys(current)) {
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = topic
		owned.Partitions = current[topic]
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	data := memberData{V: 2, Endpoint: b.Endpoint, Process: b.Process}
	if b.StandbyPositions != nil {
		for id, pos := range b.StandbyPositions() {
			if data.Positions == nil {
				data.Positions = make(map[string]int64)
			}
			data.Positions[id.String()] = pos
		}
	}
	meta.UserData, _ = json.Marshal(data)
	out := meta.AppendTo(nil)
	if b.MetaFile == "" {
		return out
	}
	// A static member that restarts rejoins with the metadata it last
	// joined with: the coordinator hands a static member that rejoins
	// with unchanged metadata its old assignment without a rebalance
	// (KIP-345), and a restarted process otherwise claims no partitions
	// at no generation. The saved metadata is used only if it asks for
	// the same topics and advertises the same endpoint.
	b.metaMu.Lock()
	defer b.metaMu.Unlock()
	if !b.rejoin && generation < 0 && len(current) == 0 {
		if saved, err := os.ReadFile(b.MetaFile); err == nil && sameInterests(saved, interests, b.Endpoint) {
			b.rejoin = true
			return saved
		}
	}
	b.rejoin = true
	if err := os.WriteFile(b.MetaFile, out, 0o644); err != nil && b.metaLog != nil {
		b.metaLog("saving the group metadata of this static member", "file", b.MetaFile, "error", err)
	}
	return out
}

// sameInterests reports whether saved member metadata asks for topics and
// advertises endpoint.
func sameInterests(saved []byte, topics []string, endpoint string) bool {
	var meta kmsg.ConsumerMemberMetadata
	if meta.ReadFrom(saved) != nil {
		return false
	}
	var data memberData
	if json.Unmarshal(meta.UserData, &data) != nil || data.Endpoint != endpoint {
		return false
	}
	a, b := slices.Sorted(slices.Values(meta.Topics)), slices.Sorted(slices.Values(topics))
	return slices.Equal(a, b)
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ParseSyncAssignment implements kgo.GroupBalancer. It hands the task
// owners' endpoints to OnHosts.
func (b *TaskBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(assignment); err != nil {
		return nil, fmt.Errorf("sync assignment parse failed: %v", err)
	}
	parts := make(map[string][]int32, len(a.Topics))
	for _, t := range a.Topics {
		parts[t.Topic] = t.Partitions
	}
	if b.OnHosts != nil {
		hosts := make(map[processor.TaskID]string)
		standby := make(map[processor.TaskID][]string)
		var data assignmentData
		if len(a.UserData) > 0 && json.Unmarshal(a.UserData, &data) == nil {
			for endpoint, ids := range data.Hosts {
				for _, id := range parseTaskIDs(ids) {
					hosts[id] = endpoint
				}
			}
			for endpoint, ids := range data.StandbyHosts {
				for _, id := range parseTaskIDs(ids) {
					standby[id] = append(standby[id], endpoint)
				}
			}
		}
		b.OnHosts(hosts, standby)
	}
	if b.OnStandbys != nil {
		var data assignmentData
		var standbys, warmups []processor.TaskID
		if len(a.UserData) > 0 && json.Unmarshal(a.UserData, &data) == nil {
			standbys, warmups = parseTaskIDs(data.Standbys[b.Process]), parseTaskIDs(data.Warmups[b.Process])
		}
		b.OnStandbys(standbys, warmups)
	}
	return parts, nil
}

// MemberBalancer implements kgo.GroupBalancer.
func (b *TaskBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

// Balance implements kgo.ConsumerBalancerBalance.
func (b *TaskBalancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	members := cb.Members() // sorted by instance ID, then member ID
	// The tasks, and the partitions each one owns.
	type task struct {
		id    processor.TaskID
		parts map[string]int32
	}
	taskCount := make(map[int]int32)
	for topic, n := range topics {
		if sub, ok := b.subOf[topic]; ok && n > taskCount[sub] {
			taskCount[sub] = n
		}
	}
	var tasks []processor.TaskID
	for sub := range len(b.topo.SubTopologies()) {
		for p := range taskCount[sub] {
			tasks = append(tasks, processor.TaskID{SubTopology: sub, Partition: p})
		}
	}
	// Previous owner of each task: the member claiming one of its
	// partitions at the highest generation.
	type claim struct {
		member int
		gen    int32
	}
	prev := make(map[processor.TaskID]claim)
	for i := range members {
		_, meta := cb.MemberAt(i)
		for _, owned := range meta.OwnedPartitions {
			sub, ok := b.subOf[owned.Topic]
			if !ok {
				continue
			}
			for _, p := range owned.Partitions {
				id := processor.TaskID{SubTopology: sub, Partition: p}
				if c, seen := prev[id]; !seen || meta.Generation > c.gen {
					prev[id] = claim{member: i, gen: meta.Generation}
				}
			}
		}
	}
	datas := make([]memberData, len(members))
	endpoints := make([]string, len(members))
	positions := make(map[processor.TaskID]map[int]int64) // standby copies: member → position
	for i := range members {
		_, meta := cb.MemberAt(i)
		if len(meta.UserData) > 0 && json.Unmarshal(meta.UserData, &datas[i]) == nil {
			endpoints[i] = datas[i].Endpoint
		}
		for s, pos := range datas[i].Positions {
			if id, err := processor.ParseTaskID(s); err == nil {
				if positions[id] == nil {
					positions[id] = make(map[int]int64)
				}
				positions[id][i] = pos
			}
		}
	}
	held := b.lags(positions) // standby copies: member → lag
	owner := assignTasks(tasks, len(members), func(id processor.TaskID) (int, bool) {
		if c, ok := prev[id]; ok {
			return c.member, true
		}
		// Its owner is gone: the most caught-up standby copy takes it,
		// with little or nothing to restore.
		return bestCopy(held[id])
	})
	hosts := assignmentData{V: 1, Hosts: make(map[string][]string)}
	if b.Replicas > 0 || b.Warmups > 0 {
		eligible := func(id processor.TaskID) bool { return b.standbyable[id.SubTopology] }
		prevOwner := func(id processor.TaskID) (int, bool) { c, ok := prev[id]; return c.member, ok }
		warmups := holdForWarmup(tasks, eligible, owner, prevOwner, func(id processor.TaskID) map[int]int64 { return held[id] }, b.Warmups)
		var standbys map[processor.TaskID][]int
		if b.Replicas > 0 {
			standbys = assignStandbys(tasks, eligible, owner, len(members), b.Replicas, func(id processor.TaskID) map[int]int64 { return held[id] })
		}
		hosts.Standbys = make(map[string][]string)
		hosts.Warmups = make(map[string][]string)
		for _, id := range tasks {
			ms := standbys[id]
			if w, ok := warmups[id]; ok {
				hosts.Warmups[datas[w].Process] = append(hosts.Warmups[datas[w].Process], id.String())
				if !slices.Contains(ms, w) {
					ms = append(ms, w)
				}
			}
			for _, m := range ms {
				if p := datas[m].Process; p != "" {
					hosts.Standbys[p] = append(hosts.Standbys[p], id.String())
				}
				if e := endpoints[m]; e != "" {
					if hosts.StandbyHosts == nil {
						hosts.StandbyHosts = make(map[string][]string)
					}
					hosts.StandbyHosts[e] = append(hosts.StandbyHosts[e], id.String())
				}
			}
		}
	}
	plan := cb.NewPlan()
	byMember := make(map[string][]processor.TaskID, len(members))
	for _, id := range tasks {
		m := &members[owner[id]]
		byMember[m.MemberID] = append(byMember[m.MemberID], id)
		if e := endpoints[owner[id]]; e != "" {
			hosts.Hosts[e] = append(hosts.Hosts[e], id.String())
		}
		for _, ref := range b.topo.SubTopologies()[id.SubTopology].Sources {
			topic := ref.Resolve(b.appID)
			if id.Partition < topics[topic] {
				plan.AddPartition(m, topic, id.Partition)
			}
		}
	}
	plan.AdjustCooperative(cb)
	if b.OnBalance != nil {
		b.OnBalance(byMember)
	}
	data, _ := json.Marshal(hosts)
	return withUserData{plan, data}
}

// withUserData is a plan whose every member assignment carries data.
type withUserData struct {
	plan *kgo.BalancePlan
	data []byte
}

// IntoSyncAssignment implements kgo.IntoSyncAssignment.
func (w withUserData) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment {
	out := w.plan.IntoSyncAssignment()
	for i := range out {
		var a kmsg.ConsumerMemberAssignment
		if err := a.ReadFrom(out[i].MemberAssignment); err != nil {
			continue // franz-go encoded it; it cannot fail
		}
		a.UserData = w.data
		out[i].MemberAssignment = a.AppendTo(nil)
	}
	return out
}

// assignTasks spreads tasks over n members so that counts differ by at most
// one, keeping each task with its previous owner where balance allows.
// Tasks are placed in order, so the result is deterministic.
func assignTasks(tasks []processor.TaskID, n int, prevOwner func(processor.TaskID) (int, bool)) map[processor.TaskID]int {
	owner := make(map[processor.TaskID]int, len(tasks))
	if n == 0 {
		return owner
	}
	floor, extra := len(tasks)/n, len(tasks)%n
	count := make([]int, n)
	// Sticky passes: first fill each previous owner up to the floor, then
	// hand out the members allowed one more.
	for pass := 0; pass < 2; pass++ {
		for _, id := range tasks {
			if _, done := owner[id]; done {
				continue
			}
			m, ok := prevOwner(id)
			if !ok || m >= n {
				continue
			}
			switch {
			case count[m] < floor:
			case pass == 1 && count[m] == floor && extra > 0:
				extra--
			default:
				continue
			}
			owner[id] = m
			count[m]++
		}
	}
	// The rest go to the least loaded member, first by member order.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	for _, id := range tasks {
		if _, done := owner[id]; done {
			continue
		}
		sort.SliceStable(order, func(i, j int) bool { return count[order[i]] < count[order[j]] })
		for _, m := range order {
			if count[m] < floor || (count[m] == floor && extra > 0) {
				if count[m] == floor {
					extra--
				}
				owner[id] = m
				count[m]++
				break
			}
		}
	}
	return owner
}

// bestCopy returns the member whose copy lags least, the lowest-numbered
// of those that lag equally.
func bestCopy(copies map[int]int64) (int, bool) {
	best, found := 0, false
	for m, lag := range copies {
		if !found || lag < copies[best] || (lag == copies[best] && m < best) {
			best, found = m, true
		}
	}
	return best, found
}

// assignStandbys places up to replicas standby copies of each eligible
// task on members other than its owner. Members that keep a copy already
// keep it, most caught-up first, as long as they hold no more than an
// even share; the rest go to the members with the fewest copies. Tasks
// are placed in order, so the result is deterministic.
func assignStandbys(tasks []processor.TaskID, eligible func(processor.TaskID) bool, owner map[processor.TaskID]int,
	n, replicas int, held func(processor.TaskID) map[int]int64) map[processor.TaskID][]int {
	out := make(map[processor.TaskID][]int)
	want := min(replicas, n-1)
	if want <= 0 {
		return out
	}
	var placed int
	for _, id := range tasks {
		if eligible(id) {
			placed += want
		}
	}
	share := (placed + n - 1) / n // the most copies one member needs to hold
	count := make([]int, n)
	for _, id := range tasks {
		if !eligible(id) {
			continue
		}
		copies := held(id)
		cands := make([]int, 0, n-1)
		for m := range n {
			if m != owner[id] {
				cands = append(cands, m)
			}
		}
		slices.SortStableFunc(cands, func(a, b int) int {
			lagA, okA := copies[a]
			lagB, okB := copies[b]
			keepA, keepB := okA && count[a] < share, okB && count[b] < share
			switch {
			case keepA && !keepB:
				return -1
			case keepB && !keepA:
				return 1
			case keepA && keepB && lagA != lagB:
				return cmp.Compare(lagA, lagB)
			}
			if c := cmp.Compare(count[a], count[b]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		for _, m := range cands[:want] {
			out[id] = append(out[id], m)
			count[m]++
		}
	}
	return out
}

// holdForWarmup keeps with its owner each task the balance would move to a
// member whose copy of it lags more than AcceptableLag (or that has none),
// changing owner in place, and returns those members, by task: they warm a
// copy up, as a standby, and the task moves at a later rebalance, once the
// copy has caught up. A task is then never unavailable for a full restore
// because an instance joined (KIP-441). Only tasks with persistent, logged
// stores are held; a task whose owner is gone goes where the balance says.
//
// At most limit tasks warm up at once (Kafka Streams'
// max.warmup.replicas): the others stay with their owners, without a
// copy, until a later rebalance, which each finished warm-up asks for.
// limit 0 holds nothing: tasks move at once, to be restored where they
// land.
func holdForWarmup(tasks []processor.TaskID, eligible func(processor.TaskID) bool, owner map[processor.TaskID]int,
	prevOwner func(processor.TaskID) (int, bool), held func(processor.TaskID) map[int]int64, limit int) map[processor.TaskID]int {
	out := make(map[processor.TaskID]int)
	if limit <= 0 {
		return out
	}
	for _, id := range tasks {
		prev, ok := prevOwner(id)
		to := owner[id]
		if !ok || prev == to || !eligible(id) {
			continue
		}
		if lag, ok := held(id)[to]; ok && lag <= AcceptableLag {
			continue // a caught-up copy: move now
		}
		owner[id] = prev
		if len(out) < limit {
			out[id] = to
		}
	}
	return out
}

func parseTaskIDs(ss []string) []processor.TaskID {
	var out []processor.TaskID
	for _, s := range ss {
		if id, err := processor.ParseTaskID(s); err == nil {
			out = append(out, id)
		}
	}
	return out
}
