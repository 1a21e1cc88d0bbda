//go:build !linux

package kafkacluster

import "os/exec"

// startProcess starts cmd. Outside Linux there is no parent-death signal,
// and a node outlives a test binary that dies without stopping it.
func startProcess(cmd *exec.Cmd) error { return cmd.Start() }
