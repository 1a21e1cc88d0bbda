package kafkacluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// server is one KRaft node, a JVM of its own. Its directory holds
// server.properties, data/ (the log and metadata directory) and logs/
// (server.log from log4j2, stdout.log with the JVM's own output). The
// cluster's lock guards its fields.
type server struct {
	id             int
	dir            string
	brokerAddr     string
	controllerAddr string

	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	paused bool
	// down says the test stopped the node (or the cluster is stopping),
	// so its exit is expected.
	down bool
	// dumping says the JVM writes the CDS archive as it exits.
	dumping bool
}

func (n *server) dataDir() string    { return filepath.Join(n.dir, "data") }
func (n *server) logsDir() string    { return filepath.Join(n.dir, "logs") }
func (n *server) properties() string { return filepath.Join(n.dir, "server.properties") }

// running says whether the node's process is alive (possibly paused).
func (n *server) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// start launches the node's JVM over its existing data directory.
func (n *server) start(java, libs string, jvm []string, log4j2 string) error {
	if err := os.MkdirAll(n.logsDir(), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(n.logsDir(), "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	share, dump := cdsFlags(java, libs, true)
	args := append(slices.Clone(jvm), share...)
	args = append(args,
		"-Dlog4j2.configurationFile="+log4j2,
		"-Dkafka.logs.dir="+n.logsDir(),
		"-cp", filepath.Join(libs, "*"),
		"kafka.Kafka", n.properties())
	cmd := exec.Command(java, args...)
	cmd.Dir = n.dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := startProcess(cmd); err != nil {
		out.Close()
		dump.done(cmd)
		return fmt.Errorf("kafkacluster: node %d: %w", n.id, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		out.Close()
		dump.done(cmd)
		close(done)
	}()
	n.cmd, n.done, n.paused, n.down, n.dumping = cmd, done, false, false, dump != nil
	return nil
}

// signal sends sig to the node's process, if it runs.
func (n *server) signal(sig syscall.Signal) error {
	if !n.running() {
		return nil
	}
	if err := n.cmd.Process.Signal(sig); err != nil && n.running() {
		return fmt.Errorf("kafkacluster: node %d: %v: %w", n.id, sig, err)
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *server) kill() error {
	n.down = true
	if err := n.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if n.cmd != nil {
		<-n.done
	}
	n.paused = false
	return nil
}

// terminate resumes the node if paused, sends SIGTERM and waits until the
// deadline for the node to exit; after it, it kills the node and reports
// forced.
func (n *server) terminate(deadline time.Time) (forced bool, err error) {
	n.down = true
	if !n.running() {
		return false, nil
	}
	if n.paused {
		if err := n.signal(syscall.SIGCONT); err != nil {
			return false, err
		}
		n.paused = false
	}
	if err := n.signal(syscall.SIGTERM); err != nil {
		return false, err
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-n.done:
		return false, nil
	case <-t.C:
		return true, n.kill()
	}
}

// exitErr describes how the node's process ended, with the end of its
// logs, for a node that should be running but is not.
func (n *server) exitErr() error {
	state := "never started"
	if n.cmd != nil && n.cmd.ProcessState != nil {
		state = n.cmd.ProcessState.String()
	}
	return fmt.Errorf("node %d exited (%s)\n%s%s", n.id, state,
		tail(filepath.Join(n.logsDir(), "stdout.log"), 10), tail(filepath.Join(n.logsDir(), "server.log"), 20))
}

// tail returns the last lines of the file at path, headed by its name, or
// nothing if it is missing or empty.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	b = bytes.TrimRight(b, "\n")
	if err != nil || len(b) == 0 {
		return ""
	}
	i := len(b)
	for ; lines > 0 && i > 0; lines-- {
		i = bytes.LastIndexByte(b[:i], '\n')
		if i < 0 {
			i = 0
		}
	}
	return fmt.Sprintf("--- %s (end)\n%s\n", path, bytes.TrimLeft(b[i:], "\n"))
}
