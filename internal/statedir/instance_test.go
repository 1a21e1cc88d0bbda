package statedir

import (
	"testing"
)

// TestLockInstance checks that live instances sharing a state root get
// distinct slots and IDs, and that a slot's ID survives its holder.
func TestLockInstance(t *testing.T) {
	root := t.TempDir()
	a, err := LockInstance(root, "app")
	if err != nil {
		t.Fatal(err)
	}
	b, err := LockInstance(root, "app")
	if err != nil {
		t.Fatal(err)
	}
	if a.Slot == b.Slot || a.ID == b.ID {
		t.Fatalf("two live instances share slot %d/%d or ID %s/%s", a.Slot, b.Slot, a.ID, b.ID)
	}
	other, err := LockInstance(root, "other-app")
	if err != nil {
		t.Fatal(err)
	}
	if other.Slot != 0 || other.ID == a.ID {
		t.Fatalf("another app got slot %d, ID %s (first app's slot 0 has %s)", other.Slot, other.ID, a.ID)
	}
	other.Close()
	idA := a.ID
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := LockInstance(root, "app")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	defer b.Close()
	if again.Slot != 0 || again.ID != idA {
		t.Fatalf("restart took slot %d with ID %s, want slot 0 and its ID %s", again.Slot, again.ID, idA)
	}
}
