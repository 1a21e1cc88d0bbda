package rank_test

import (
	"testing"

	"github.com/kappa-streams/kappa/examples/newsrank/rank"
)

func TestTopologyBuilds(t *testing.T) {
	topo, err := rank.Topology(rank.DefaultParams, rank.Topics{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(topo.Describe())
}
