package ksdiff_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildCommand builds the Kafka Streams side's jar.
const buildCommand = "internal/ksdiff/java/build.sh"

// kstreamsJar returns java and the built jar, or skips the test saying how
// to get them; with CI set it fails instead, since CI installs both.
func kstreamsJar(t *testing.T) (java, jar string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so this fails rather than skips)")
		}
		t.Skip(msg)
	}
	java = os.Getenv("KAPPA_JAVA")
	if java != "" {
		if _, err := os.Stat(java); err != nil {
			missing("ksdiff: KAPPA_JAVA=%s: %v", java, err)
		}
	} else {
		var err error
		if java, err = exec.LookPath("java"); err != nil {
			missing("ksdiff: java is not on PATH: install a JDK 17 or newer (apt-get install openjdk-17-jdk-headless maven), " +
				"then build the Kafka Streams side with " + buildCommand)
		}
	}
	_, file, _, _ := runtime.Caller(0)
	jar = filepath.Join(filepath.Dir(file), "java", "target", "ksdiff.jar")
	if _, err := os.Stat(jar); err != nil {
		missing("ksdiff: %s is not built: run %s (needs a JDK 17 and Maven 3; it fetches Kafka Streams from Maven Central)", jar, buildCommand)
	}
	return java, jar
}

// jvmFlags keep the Kafka Streams JVM small and quick to start on a shared
// machine: the C1 compiler only and a serial collector.
var jvmFlags = []string{"-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"}

// kstreams is the Kafka Streams app, a child process running KsDiff.
type kstreams struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr string // the file its stderr goes to
	exited chan struct{}
	err    error // the exit status, once exited is closed

	mu      sync.Mutex
	states  []string  // "state S" lines, in order
	running time.Time // when it first reported RUNNING
}

// startKStreams starts KsDiff with every case's Kafka Streams topology. It
// is killed when the test ends if stop has not stopped it.
func startKStreams(t *testing.T, java, jar string, brokers []string, appID string, cases []*diffCase) *kstreams {
	t.Helper()
	args := append(append([]string{}, jvmFlags...), "-jar", jar,
		"--bootstrap", strings.Join(brokers, ","), "--app-id", appID, "--state-dir", t.TempDir())
	for _, c := range cases {
		spec := fmt.Sprintf("name=%s,topo=%s,in=%s,out=%s,size=%d,grace=%d,gap=%d", c.name, c.ks,
			strings.Join(c.inputTopics(), ";"), c.outKStreams(), size.Milliseconds(), grace.Milliseconds(), gap.Milliseconds())
		args = append(args, spec)
	}
	ks := &kstreams{cmd: exec.Command(java, args...), exited: make(chan struct{})}
	ks.stderr = filepath.Join(t.TempDir(), "kstreams.stderr")
	errf, err := os.Create(ks.stderr)
	if err != nil {
		t.Fatal(err)
	}
	ks.cmd.Stderr = errf
	if ks.stdin, err = ks.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := ks.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.cmd.Start(); err != nil {
		t.Fatalf("ksdiff: starting Kafka Streams: %v", err)
	}
	errf.Close()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "state "); ok {
				ks.mu.Lock()
				ks.states = append(ks.states, s)
				if s == "RUNNING" && ks.running.IsZero() {
					ks.running = time.Now()
				}
				ks.mu.Unlock()
			}
		}
		ks.err = ks.cmd.Wait()
		close(ks.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-ks.exited:
		default:
			ks.cmd.Process.Kill()
			<-ks.exited
		}
	})
	return ks
}

// failed returns why the app cannot make progress any more, or nil.
func (ks *kstreams) failed() error {
	select {
	case <-ks.exited:
		return fmt.Errorf("Kafka Streams exited (%v), states %v; its log:\n%s", ks.err, ks.stateList(), ks.log())
	default:
		return nil
	}
}

// runningAt returns when the app first reported RUNNING, zero if never.
func (ks *kstreams) runningAt() time.Time {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.running
}

func (ks *kstreams) stateList() []string {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return append([]string(nil), ks.states...)
}

// log returns the end of the app's stderr.
func (ks *kstreams) log() string {
	b, _ := os.ReadFile(ks.stderr)
	const keep = 8000
	if len(b) > keep {
		b = append([]byte("...\n"), b[len(b)-keep:]...)
	}
	return string(b)
}

// stop closes the app (close with LEAVE_GROUP, which commits) and waits for
// it to exit, killing it after within.
func (ks *kstreams) stop(within time.Duration) error {
	io.WriteString(ks.stdin, "stop\n")
	ks.stdin.Close()
	select {
	case <-ks.exited:
		if ks.err != nil {
			return fmt.Errorf("Kafka Streams exited with %v; its log:\n%s", ks.err, ks.log())
		}
		return nil
	case <-time.After(within):
		ks.cmd.Process.Kill()
		<-ks.exited
		return fmt.Errorf("Kafka Streams did not stop within %v; killed it; its log:\n%s", within, ks.log())
	}
}
