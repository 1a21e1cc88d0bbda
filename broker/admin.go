package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicSpec is what a topology needs of one topic.
type TopicSpec struct {
	Name string
	// Partitions is the partition count. 0 accepts any count for an
	// existing topic and uses the broker default when creating one.
	Partitions int32
	// Configs are topic configs such as cleanup.policy. Only cleanup.policy
	// is checked on existing topics; the others apply at creation.
	Configs map[string]string
	// Replicas is the replication factor at creation; 0 uses the
	// broker's default.replication.factor. Existing topics keep theirs.
	Replicas int16
}

// TopicInfo describes an existing topic.
type TopicInfo struct {
	Name       string
	Partitions int32
	Internal   bool
	// Configs holds the configs set on the topic itself (not broker
	// defaults).
	Configs map[string]string
	// EndOffsets holds each partition's high watermark, by partition.
	EndOffsets []int64
}

// TopicMismatchError reports an existing topic that differs from what is
// needed. Fix it by deleting the topic (losing its data), by altering it, or
// by changing the topology.
type TopicMismatchError struct {
	Topic string
	Field string // "partitions" or a config key such as "cleanup.policy"
	Have  string
	Want  string
}

func (e *TopicMismatchError) Error() string {
	return fmt.Sprintf("broker: topic %q has %s=%s but needs %s=%s: delete or alter the topic, or change the topology",
		e.Topic, e.Field, e.Have, e.Field, e.Want)
}

// ErrTopicNotFound is wrapped by errors for topics that do not exist.
var ErrTopicNotFound = errors.New("topic does not exist")

// Admin administers topics. It is safe for concurrent use.
type Admin struct {
	cl  *kgo.Client
	adm *kadm.Client
}

func newAdmin(cl *kgo.Client) *Admin { return &Admin{cl: cl, adm: kadm.NewClient(cl)} }

// NewAdmin wraps an existing franz-go client.
func NewAdmin(cl *kgo.Client) *Admin { return newAdmin(cl) }

// BrokerCount returns how many brokers the cluster has.
func (a *Admin) BrokerCount(ctx context.Context) (int, error) {
	md, err := a.adm.BrokerMetadata(ctx)
	if err != nil {
		return 0, fmt.Errorf("broker: list brokers: %w", err)
	}
	return len(md.Brokers), nil
}

// List returns the names of all non-internal topics, sorted.
func (a *Admin) List(ctx context.Context) ([]string, error) {
	md, err := a.metadata(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("broker: list topics: %w", err)
	}
	names := make([]string, 0, len(md))
	for name, m := range md {
		if m.err == nil && !m.internal {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

type topicMeta struct {
	partitions int32
	internal   bool
	err        error
	// leaderless counts the partitions without a leader yet.
	leaderless int
}

// metadata asks the broker directly. kadm's lookups read franz-go's metadata
// cache, which keeps "unknown topic" answers for seconds after we create
// the topic; a direct request also refreshes that cache.
func (a *Admin) metadata(ctx context.Context, topics []string) (map[string]topicMeta, error) {
	req := kmsg.NewPtrMetadataRequest()
	if topics != nil {
		req.Topics = make([]kmsg.MetadataRequestTopic, len(topics))
		for i, t := range topics {
			req.Topics[i] = kmsg.NewMetadataRequestTopic()
			req.Topics[i].Topic = kmsg.StringPtr(t)
		}
	}
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, err
	}
	out := make(map[string]topicMeta, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		m := topicMeta{partitions: int32(len(t.Partitions)), internal: t.IsInternal, err: kerr.ErrorForCode(t.ErrorCode)}
		for _, p := range t.Partitions {
			if p.Leader < 0 {
				m.leaderless++
			}
		}
		out[*t.Topic] = m
	}
	return out, nil
}

// PartitionCounts returns the partition count of each named topic. A missing
// topic yields an error wrapping ErrTopicNotFound that names it.
func (a *Admin) PartitionCounts(ctx context.Context, topics ...string) (map[string]int32, error) {
	md, err := a.metadata(ctx, topics)
	if err != nil {
		return nil, fmt.Errorf("broker: describe topics: %w", err)
	}
	counts := make(map[string]int32, len(topics))
	var errs []error
	for _, t := range topics {
		d, ok := md[t]
		if !ok || errors.Is(d.err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("broker: topic %q: %w", t, ErrTopicNotFound))
			continue
		}
		if d.err != nil {
			errs = append(errs, fmt.Errorf("broker: topic %q: %w", t, d.err))
			continue
		}
		counts[t] = d.partitions
	}
	return counts, errors.Join(errs...)
}

// Describe returns the partition count, topic-level configs and end offsets
// of each named topic.
func (a *Admin) Describe(ctx context.Context, topics ...string) ([]TopicInfo, error) {
	counts, err := a.PartitionCounts(ctx, topics...)
	if err != nil {
		return nil, err
	}
	cfgs, err := a.topicConfigs(ctx, topics...)
	if err != nil {
		return nil, err
	}
	ends, err := a.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("broker: end offsets: %w", err)
	}
	md, err := a.metadata(ctx, topics)
	if err != nil {
		return nil, fmt.Errorf("broker: describe topics: %w", err)
	}
	infos := make([]TopicInfo, 0, len(topics))
	for _, t := range topics {
		info := TopicInfo{Name: t, Partitions: counts[t], Configs: cfgs[t], Internal: md[t].internal}
		info.EndOffsets = make([]int64, info.Partitions)
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == t && o.Partition < info.Partitions {
				info.EndOffsets[o.Partition] = o.Offset
			}
		})
		infos = append(infos, info)
	}
	return infos, nil
}

func (a *Admin) topicConfigs(ctx context.Context, topics ...string) (map[string]map[string]string, error) {
	rcs, err := a.adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("broker: describe topic configs: %w", err)
	}
	out := make(map[string]map[string]string, len(rcs))
	for _, rc := range rcs {
		if rc.Err != nil {
			return nil, fmt.Errorf("broker: configs of topic %q: %w", rc.Name, rc.Err)
		}
		m := make(map[string]string)
		for _, c := range rc.Configs {
			if c.Source == kmsg.ConfigSourceDynamicTopicConfig && c.Value != nil {
				m[c.Key] = *c.Value
			}
		}
		out[rc.Name] = m
	}
	return out, nil
}

// Create creates one topic. partitions ≤ 0 uses the broker default.
func (a *Admin) Create(ctx context.Context, spec TopicSpec) error {
	p := spec.Partitions
	if p <= 0 {
		p = -1
	}
	var cfg map[string]*string
	if len(spec.Configs) > 0 {
		cfg = make(map[string]*string, len(spec.Configs))
		for k, v := range spec.Configs {
			cfg[k] = kadm.StringPtr(v)
		}
	}
	rf := spec.Replicas
	if rf <= 0 {
		rf = -1
	}
	if _, err := a.adm.CreateTopic(ctx, p, rf, cfg, spec.Name); err != nil {
		return fmt.Errorf("broker: create topic %q: %w", spec.Name, err)
	}
	return nil
}

// CreateAndWait is Create, then waits until every broker lists the topic
// with a leader for each partition (at most 30 s): on a cluster, a client
// that asks another broker right after a creation may otherwise be told
// that the topic does not exist.
func (a *Admin) CreateAndWait(ctx context.Context, spec TopicSpec) error {
	if err := a.Create(ctx, spec); err != nil {
		return err
	}
	return a.waitListed(ctx, []string{spec.Name})
}

// EnsureTopics creates the topics that do not exist and checks the ones that
// do: a partition count or cleanup.policy other than the spec's is a
// *TopicMismatchError. Every problem is reported, joined.
func (a *Admin) EnsureTopics(ctx context.Context, specs ...TopicSpec) error {
	if len(specs) == 0 {
		return nil
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	md, err := a.metadata(ctx, names)
	if err != nil {
		return fmt.Errorf("broker: describe topics: %w", err)
	}
	var errs []error
	var existing []TopicSpec
	for _, s := range specs {
		d, ok := md[s.Name]
		if ok && d.err == nil {
			existing = append(existing, s)
			continue
		}
		if ok && !errors.Is(d.err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("broker: topic %q: %w", s.Name, d.err))
			continue
		}
		if err := a.Create(ctx, s); err != nil {
			if !errors.Is(err, kerr.TopicAlreadyExists) {
				errs = append(errs, err)
				continue
			}
			// Another instance created it first: check it like any other.
			existing = append(existing, s)
		}
	}
	if len(errs) > 0 {
		if len(existing) > 0 {
			errs = append(errs, a.check(ctx, existing))
		}
		return errors.Join(errs...)
	}
	// A cluster's brokers learn of a new topic asynchronously: the one
	// asked may not list it yet, though it was created here or by
	// another instance a moment ago (the embedded broker lists it at once).
	if err := a.waitListed(ctx, names); err != nil {
		return err
	}
	if len(existing) > 0 {
		return a.check(ctx, existing)
	}
	return nil
}

// topicsReadyWithin bounds how long EnsureTopics waits for new topics to
// be listed with a leader for every partition.
const topicsReadyWithin = 30 * time.Second

// waitListed waits until every broker's metadata lists every topic of
// names with a leader for each of its partitions, for at most
// topicsReadyWithin: requests go to any broker, and each learns of a new
// topic on its own.
func (a *Admin) waitListed(ctx context.Context, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, topicsReadyWithin)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		waiting, err := a.notListed(ctx, names)
		if err == nil && len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("not listed with a leader for every partition by every broker yet: %s", strings.Join(waiting, "; "))
			}
			return fmt.Errorf("broker: topics not ready within %v: %w", topicsReadyWithin, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// notListed asks each broker of the cluster for the metadata of names and
// returns the topics some broker does not list with a leader for every
// partition, as "topic (broker n)".
func (a *Admin) notListed(ctx context.Context, names []string) ([]string, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, n := range names {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, err
	}
	var waiting []string
	for _, b := range resp.Brokers {
		bresp, err := a.cl.Broker(int(b.NodeID)).RetriableRequest(ctx, req)
		if err != nil {
			return nil, err
		}
		listed := make(map[string]bool)
		for _, t := range bresp.(*kmsg.MetadataResponse).Topics {
			if t.Topic == nil || t.ErrorCode != 0 || len(t.Partitions) == 0 {
				continue
			}
			ok := true
			for _, p := range t.Partitions {
				ok = ok && p.Leader >= 0
			}
			listed[*t.Topic] = ok
		}
		for _, n := range names {
			if !listed[n] {
				waiting = append(waiting, fmt.Sprintf("%s (broker %d)", n, b.NodeID))
			}
		}
	}
	return waiting, nil
}

func (a *Admin) check(ctx context.Context, specs []TopicSpec) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	counts, err := a.PartitionCounts(ctx, names...)
	if err != nil {
		return err
	}
	var withPolicy []string
	for _, s := range specs {
		if _, ok := s.Configs["cleanup.policy"]; ok {
			withPolicy = append(withPolicy, s.Name)
		}
	}
	cfgs, err := a.topicConfigs(ctx, withPolicy...)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range specs {
		if have := counts[s.Name]; s.Partitions > 0 && have != s.Partitions {
			errs = append(errs, &TopicMismatchError{Topic: s.Name, Field: "partitions",
				Have: fmt.Sprint(have), Want: fmt.Sprint(s.Partitions)})
		}
		want, ok := s.Configs["cleanup.policy"]
		if !ok {
			continue
		}
		have := cfgs[s.Name]["cleanup.policy"]
		if have == "" {
			have = "delete" // Kafka's default
		}
		if normPolicy(have) != normPolicy(want) {
			errs = append(errs, &TopicMismatchError{Topic: s.Name, Field: "cleanup.policy", Have: have, Want: want})
		}
	}
	return errors.Join(errs...)
}

func normPolicy(p string) string {
	parts := strings.Split(strings.ReplaceAll(p, " ", ""), ",")
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), ",")
}

// Delete deletes topics.
func (a *Admin) Delete(ctx context.Context, topics ...string) error {
	resp, err := a.adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("broker: delete topics: %w", err)
	}
	var errs []error
	for _, t := range slices.Sorted(maps.Keys(resp)) {
		if r := resp[t]; r.Err != nil {
			errs = append(errs, fmt.Errorf("broker: delete topic %q: %w", t, r.Err))
		}
	}
	return errors.Join(errs...)
}
