package processor_test

import (
	"testing"

	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"
)

// TestLifecycleNeedsTheKey checks that a forged (zero) key does not open
// a task's life cycle.
func TestLifecycleNeedsTheKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewTask with a zero key did not panic")
		}
	}()
	processor.NewTask(tasklife.Key{}, nil, 0, 0, nil)
}
