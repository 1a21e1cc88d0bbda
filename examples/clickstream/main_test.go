package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRunStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, options{rate: 1000}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.Contains(text, "stopped cleanly after") {
		t.Fatalf("no clean stop in output:\n%s", text)
	}
	m := regexp.MustCompile(`by-article (\d+), sports (\d+), dead-lettered (\d+)`).FindAllStringSubmatch(text, -1)
	if len(m) == 0 {
		t.Fatalf("no status lines:\n%s", text)
	}
	last := m[len(m)-1]
	for i, what := range []string{"by-article", "sports", "dead-lettered"} {
		if n, _ := strconv.Atoi(last[i+1]); n == 0 {
			t.Errorf("%s count is 0 in %q", what, last[0])
		}
	}
}
