package state

import (
	"errors"
	"testing"
)

func TestTaskDirLockAndCheckpoint(t *testing.T) {
	root := t.TempDir()
	d, err := OpenTaskDir(root, "app", "0_1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTaskDir(root, "app", "0_1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	other, err := OpenTaskDir(root, "app", "0_2")
	if err != nil {
		t.Fatalf("another task's directory: %v", err)
	}
	other.Close()
	if cp, err := d.ReadCheckpoint(); err != nil || len(cp) != 0 {
		t.Fatalf("fresh checkpoint: %v %v", cp, err)
	}
	if err := d.WriteCheckpoint(Checkpoint{"counts": 41}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, err = OpenTaskDir(root, "app", "0_1")
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	defer d.Close()
	if cp, _ := d.ReadCheckpoint(); cp["counts"] != 41 {
		t.Fatalf("checkpoint after reopen: %v", cp)
	}
	d.RemoveCheckpoint()
	if cp, _ := d.ReadCheckpoint(); len(cp) != 0 {
		t.Fatalf("checkpoint after remove: %v", cp)
	}
}
