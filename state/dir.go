package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// TaskDir is a task's directory under the state root,
// <root>/<app>/<task>/, holding one subdirectory per persistent store and
// the checkpoint file. It is locked while open, so two instances sharing a
// state root never use the same task's files at once.
type TaskDir struct {
	path string
	lock *os.File
}

// ErrLocked is returned by OpenTaskDir when another instance (or another
// App in this process) holds the task's directory.
var ErrLocked = errors.New("state: task directory is locked by another instance")

const (
	lockFile       = ".lock"
	checkpointFile = ".checkpoint"
)

// OpenTaskDir creates and locks the directory of task in app under root.
func OpenTaskDir(root, app, task string) (*TaskDir, error) {
	path := filepath.Join(root, app, task)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("state: state directory %s: %w (set a writable one with kappa.StateDir)", path, err)
	}
	f, err := os.OpenFile(filepath.Join(path, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state: lock file in %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("state: lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteString(strconv.Itoa(os.Getpid()))
	return &TaskDir{path: path, lock: f}, nil
}

// Path returns the directory.
func (d *TaskDir) Path() string { return d.path }

// StorePath returns the directory of a store's files.
func (d *TaskDir) StorePath(store string) string { return filepath.Join(d.path, store) }

// Checkpoint maps each store to the changelog offset its local data covers
// up to: the next restore starts after it.
type Checkpoint map[string]int64

// ReadCheckpoint returns the task's checkpoint, empty if there is none.
func (d *TaskDir) ReadCheckpoint() (Checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(d.path, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: read checkpoint: %w", err)
	}
	cp := Checkpoint{}
	if err := json.Unmarshal(b, &cp); err != nil {
		// A torn or corrupt checkpoint only costs a longer restore.
		return Checkpoint{}, nil
	}
	return cp, nil
}

// WriteCheckpoint replaces the checkpoint atomically (write, sync, rename).
func (d *TaskDir) WriteCheckpoint(cp Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := filepath.Join(d.path, checkpointFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("state: write checkpoint: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("state: write checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("state: write checkpoint: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("state: write checkpoint: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(d.path, checkpointFile)); err != nil {
		return fmt.Errorf("state: write checkpoint: %w", err)
	}
	return nil
}

// RemoveCheckpoint deletes the checkpoint, so the next open restores in
// full. Exactly-once uses it while a task has uncommitted local writes.
func (d *TaskDir) RemoveCheckpoint() error {
	err := os.Remove(filepath.Join(d.path, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Close releases the lock.
func (d *TaskDir) Close() error {
	if d.lock == nil {
		return nil
	}
	syscall.Flock(int(d.lock.Fd()), syscall.LOCK_UN)
	err := d.lock.Close()
	d.lock = nil
	return err
}
