package smoke

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// statusPrefix starts every status line the smokeapp program prints.
const statusPrefix = "smokeapp status "

// Status is what one app instance reports about its tasks. The smokeapp
// program prints it as one line on stdout each time it changes; a driver
// reads it back with ParseStatus to wait until a rebalance has settled.
type Status struct {
	// Instance is the name given with -instance.
	Instance string
	// Tasks are the IDs ("<sub-topology>_<partition>") of the tasks the
	// instance runs, sorted.
	Tasks []string
	// Ready is true when the instance runs at least one task and every one
	// has restored its stores and processes records.
	Ready bool
	// Restored counts the changelog records the instance's running tasks
	// restored when they opened.
	Restored int64
	// Standbys holds the standby tasks the instance keeps, with the
	// changelog offsets their stores reached, summed.
	Standbys map[string]int64
}

// String formats s as a status line, for example
// "smokeapp status instance=a ready=true tasks=0_1,1_1".
func (s Status) String() string {
	ready := "false"
	if s.Ready {
		ready = "true"
	}
	line := statusPrefix + "instance=" + s.Instance + " ready=" + ready + " tasks=" + strings.Join(s.Tasks, ",") +
		" restored=" + strconv.FormatInt(s.Restored, 10)
	if len(s.Standbys) > 0 {
		var sb []string
		for _, id := range slices.Sorted(maps.Keys(s.Standbys)) {
			sb = append(sb, id+":"+strconv.FormatInt(s.Standbys[id], 10))
		}
		line += " standbys=" + strings.Join(sb, ",")
	}
	return line
}

// ParseStatus parses a line printed by Status.String. It reports false for
// any other line, such as a log line.
func ParseStatus(line string) (Status, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), statusPrefix)
	if !ok {
		return Status{}, false
	}
	var s Status
	seen := 0
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "instance":
			s.Instance = v
		case "ready":
			s.Ready = v == "true"
		case "tasks":
			if v != "" {
				s.Tasks = strings.Split(v, ",")
			}
		case "restored":
			s.Restored, _ = strconv.ParseInt(v, 10, 64)
			continue
		case "standbys":
			s.Standbys = map[string]int64{}
			for _, e := range strings.Split(v, ",") {
				id, n, _ := strings.Cut(e, ":")
				s.Standbys[id], _ = strconv.ParseInt(n, 10, 64)
			}
			continue
		default:
			continue
		}
		seen++
	}
	if seen != 3 {
		return Status{}, false
	}
	slices.Sort(s.Tasks)
	return s, true
}
