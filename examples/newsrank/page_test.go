package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium returns Debian's Chromium, or skips the test saying why.
// .ci/run installs it, so CI never skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: install Debian's chromium package (.ci/run does) to test the page in a browser")
	return ""
}

// headless runs Chromium headless on url with args, for a page that keeps
// running its scripts for budget of virtual time.
func headless(t *testing.T, bin, url string, budget time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=" + strconv.Itoa(int(budget.Milliseconds())),
	}, args...)
	all = append(all, url)
	out, err := exec.CommandContext(ctx, bin, all...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return string(out)
}

// TestPageInBrowser runs the whole example (embedded broker, simulator,
// app, page) and loads the page in headless Chromium: every section shows
// ranked articles by both arms, and the rankings change while the page
// runs. It keeps a screenshot (in $NEWSRANK_SCREENSHOT if set, else in
// the test's temporary directory, logged).
func TestPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the example and a browser; run without -short")
	}
	bin := chromium(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, options{role: "all", httpAddr: addr, appURL: "http://" + addr, appID: "newsrank",
			stateDir: t.TempDir(), speed: 120, rate: 100, seed: 1, partitions: 4}, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the example: %v", err)
		}
	}()
	url := "http://" + addr + "/"
	// Wait until the app has ranked every section: the first minute
	// closes after a minute and 30 s of simulated time.
	sections := regexp.MustCompile(`<div class="section" data-section="[a-z]+">`)
	deadline := time.Now().Add(90 * time.Second)
	var dom string
	for {
		dom = headless(t, bin, url, 5*time.Second, "--dump-dom")
		if len(sections.FindAllString(dom, -1)) == 8 || time.Now().After(deadline) {
			break
		}
	}
	if n := len(sections.FindAllString(dom, -1)); n != 8 {
		t.Fatalf("the page shows %d sections, want 8:\n%s", n, dom)
	}
	items := regexp.MustCompile(`<li class="item[^"]*" data-article="a\d+"`).FindAllString(dom, -1)
	if len(items) < 8*2*5 {
		t.Errorf("the page lists %d ranked articles, want at least 5 per section and arm", len(items))
	}
	if !strings.Contains(dom, `<path d="M`) {
		t.Errorf("the CTR chart has no line")
	}
	// The rankings change while the page runs: it counts the changes it
	// sees in data-updates.
	dom = headless(t, bin, url, 15*time.Second, "--dump-dom")
	m := regexp.MustCompile(`data-updates="(\d+)"`).FindStringSubmatch(dom)
	if m == nil || m[1] == "0" {
		t.Errorf("the rankings did not change during 15 s on the page (data-updates %v)", m)
	}
	shot := filepath.Join(t.TempDir(), "newsrank.png")
	if p := os.Getenv("NEWSRANK_SCREENSHOT"); p != "" {
		shot = p
	}
	headless(t, bin, url, 5*time.Second, "--screenshot="+shot, "--window-size=1280,1100", "--hide-scrollbars")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
