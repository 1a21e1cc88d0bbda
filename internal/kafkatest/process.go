package kafkatest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// BrokerProcess is `kappa broker` running as a process of its own, so that
// a test can SIGKILL it as a crash would and start it again over the same
// data directory and address.
type BrokerProcess struct {
	t       testing.TB
	bin     string
	dataDir string
	logPath string
	addr    string
	cmd     *exec.Cmd
	done    chan struct{}
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// kappaBinary builds cmd/kappa once per test binary and returns its path.
func kappaBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kappa-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "kappa")
		out, err := exec.Command("go", "build", "-o", buildBin, "github.com/kappa-streams/kappa/cmd/kappa").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build cmd/kappa: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// StartBrokerProcess builds the kappa command and starts `kappa broker`
// on a free loopback port, keeping its data in dataDir. The process is
// killed when the test ends; its log is printed if the test failed.
func StartBrokerProcess(t testing.TB, dataDir string) *BrokerProcess {
	t.Helper()
	p := &BrokerProcess{t: t, bin: kappaBinary(t), dataDir: dataDir, addr: "127.0.0.1:0",
		logPath: filepath.Join(t.TempDir(), "broker.log")}
	p.Start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(p.logPath); err == nil {
				t.Logf("broker log:\n%s", b)
			}
		}
	})
	return p
}

// Addrs returns the broker's address, the same across restarts.
func (p *BrokerProcess) Addrs() []string { return []string{p.addr} }

// Start starts the broker on its address (a free port the first time)
// and data directory, and waits until it listens. It was killed, or never
// started.
func (p *BrokerProcess) Start() {
	t := p.t
	t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmd := exec.Command(p.bin, "broker", "--listen", p.addr, "--data-dir", p.dataDir)
		cmd.Stderr = logf
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		lines := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				fmt.Fprintln(logf, sc.Text())
				select {
				case lines <- sc.Text():
				default:
				}
			}
			cmd.Wait()
			close(done)
		}()
		select {
		case line := <-lines:
			// "kappa broker listening on 127.0.0.1:40123 (data in ...)"
			f := strings.Fields(line)
			if len(f) < 5 || f[2] != "listening" {
				t.Fatalf("kappa broker printed %q, want its address", line)
			}
			p.addr, p.cmd, p.done = f[4], cmd, done
			return
		case <-done:
			// The port of the last run may not be free yet: try again.
			if time.Now().After(deadline) {
				t.Fatalf("kappa broker did not start on %s within 30s; see %s", p.addr, p.logPath)
			}
			time.Sleep(50 * time.Millisecond)
		case <-time.After(5 * time.Minute):
			t.Fatalf("kappa broker did not print its address within 5 minutes")
		}
	}
}

// Kill sends SIGKILL and waits for the process to die: the broker gets no
// chance to write anything more.
func (p *BrokerProcess) Kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// Restart kills the broker and starts it again on the same address and
// data directory.
func (p *BrokerProcess) Restart() {
	p.t.Helper()
	p.Kill()
	p.Start()
}
