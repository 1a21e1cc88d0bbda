package statedir

import (
	"errors"
	"testing"

	"github.com/kappa-streams/kappa/state"
)

// TestTaskDirLock checks that a task directory is held by one opener at a
// time, that other tasks' directories are independent, and that Close
// releases it.
func TestTaskDirLock(t *testing.T) {
	root := t.TempDir()
	d, err := OpenTaskDir(root, "app", "0_1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTaskDir(root, "app", "0_1"); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	other, err := OpenTaskDir(root, "app", "0_2")
	if err != nil {
		t.Fatalf("another task's directory: %v", err)
	}
	other.Close()
	d.Close()
	d, err = OpenTaskDir(root, "app", "0_1")
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	d.Close()
}
