package kafkacluster

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNewConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Opt
		errs []string // in the joined error, in order
	}{
		{"defaults", nil, nil},
		{"all set", []Opt{Nodes(1), Partitions(1), AutoCreateTopics(true), BrokerConfig("log.segment.bytes", "1048576"),
			JVMFlags("-Xmx1g"), Timeout(time.Second)}, nil},
		{"every problem", []Opt{Nodes(0), Partitions(0), Timeout(0), BrokerConfig("node.id", "7")},
			[]string{"Nodes(0)", "Partitions(0)", "Timeout(0s)", `BrokerConfig("node.id")`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newConfig(tc.opts)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.errs)
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tc.errs) {
				t.Errorf("%d problems reported, want %d: %v", got, len(tc.errs), err)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
		})
	}
}

func TestServerProperties(t *testing.T) {
	nodes := []*server{
		{id: 0, dir: "/c/node-0", brokerAddr: "127.0.0.1:1000", controllerAddr: "127.0.0.1:1001"},
		{id: 1, dir: "/c/node-1", brokerAddr: "127.0.0.1:1002", controllerAddr: "127.0.0.1:1003"},
		{id: 2, dir: "/c/node-2", brokerAddr: "127.0.0.1:1004", controllerAddr: "127.0.0.1:1005"},
	}
	for _, tc := range []struct {
		name string
		opts []Opt
		n    int
		want []string
	}{
		{"defaults", nil, 1, []string{
			"node.id=1",
			"controller.quorum.voters=0@127.0.0.1:1001,1@127.0.0.1:1003,2@127.0.0.1:1005",
			"listeners=PLAINTEXT://127.0.0.1:1002,CONTROLLER://127.0.0.1:1003",
			"log.dirs=/c/node-1/data",
			"num.partitions=4", "default.replication.factor=3", "min.insync.replicas=2",
			"offsets.topic.replication.factor=3", "transaction.state.log.min.isr=2",
			"auto.create.topics.enable=false", "group.initial.rebalance.delay.ms=0",
		}},
		{"one node", []Opt{Nodes(1)}, 0, []string{
			"default.replication.factor=1", "min.insync.replicas=1", "transaction.state.log.min.isr=1",
		}},
		{"options", []Opt{Partitions(8), AutoCreateTopics(true), BrokerConfig("num.io.threads", "4"),
			BrokerConfig("log.retention.ms", "-1")}, 0, []string{
			"num.partitions=8", "auto.create.topics.enable=true", "num.io.threads=4", "log.retention.ms=-1",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := newConfig(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			props := serverProperties(cfg, nodes[:max(cfg.nodes, tc.n+1)], nodes[tc.n])
			lines := strings.Split(props, "\n")
			for _, want := range tc.want {
				key, _, _ := strings.Cut(want, "=")
				var got []string
				for _, l := range lines {
					if strings.HasPrefix(l, key+"=") {
						got = append(got, l)
					}
				}
				if len(got) != 1 || got[0] != want {
					t.Errorf("%s: got %q, want %q", key, got, want)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	if v := Version(); !regexp.MustCompile(`^4\.\d+\.\d+$`).MatchString(v) {
		t.Fatalf("Version() = %q, want a Kafka 4.x.y", v)
	}
}

func TestNewClusterID(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{21}$`)
	for range 1000 {
		if id := newClusterID(); !re.MatchString(id) {
			t.Fatalf("cluster ID %q is not 22 base64url characters, not starting with '-'", id)
		}
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := freePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	below := ephemeralLow()-10000 >= 1000 // else the kernel's ports are used
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] || p <= 0 || below && p >= ephemeralLow() {
			t.Fatalf("ports %v: want 6 distinct ports, below the ephemeral range if it leaves room", ports)
		}
		seen[p] = true
	}
}
