package kafkacluster

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// startProcess starts cmd such that the kernel kills it when the test
// binary dies without stopping it (a panic, a -timeout, a SIGKILL), so no
// JVM outlives the tests.
//
// Linux sends the parent-death signal when the thread that forked the
// child exits, not the process, and the Go runtime ends a thread whose
// goroutine exits while locked to it. So every node is forked from one
// goroutine locked to its thread for the life of the binary.
func startProcess(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan func())
		go func() {
			runtime.LockOSThread()
			for f := range spawner.reqs {
				f()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	spawner.reqs <- func() { errc <- cmd.Start() }
	return <-errc
}

var spawner struct {
	once sync.Once
	reqs chan func()
}
