// Package statedir holds the directories an instance keeps under its
// state root, <root>/<app>/: each task's directory, locked while a task or
// standby uses it and marked unclean while its stores may hold
// uncommitted writes, and the instance slots that give a restarted
// instance its predecessor's transactional ID. Only Kappa's runtime and
// its command use them; the stores themselves are package state's.
package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/kappa-streams/kappa/state"
)

// TaskDir is a task's directory under the state root,
// <root>/<app>/<task>/, holding one subdirectory per persistent store.
// Each store keeps the changelog position its data reaches in its own
// engine's metadata, written in the same batch as the data. The directory
// is locked while open, so two instances sharing a state root never use
// the same task's files at once.
type TaskDir struct {
	path string
	lock *os.File
}

// lockFile is the file in a task directory that its lock is taken on; it
// holds the process ID of the holder.
const lockFile = ".lock"

// OpenTaskDir creates and locks the directory of task in app under root.
func OpenTaskDir(root, app, task string) (*TaskDir, error) {
	path := filepath.Join(root, app, task)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("statedir: state directory %s: %w (set a writable one with kappa.StateDir)", path, err)
	}
	f, err := os.OpenFile(filepath.Join(path, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("statedir: lock file in %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", state.ErrLocked, path)
		}
		return nil, fmt.Errorf("statedir: lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteString(strconv.Itoa(os.Getpid()))
	return &TaskDir{path: path, lock: f}, nil
}

// Path returns the directory.
func (d *TaskDir) Path() string { return d.path }

// StorePath returns the directory of a store's files.
func (d *TaskDir) StorePath(store string) string { return filepath.Join(d.path, store) }

// uncleanFile marks a task directory whose stores may hold writes that
// their committed changelogs do not.
const uncleanFile = ".unclean"

// MarkUnclean records that the task's stores may from now on hold writes
// that their committed changelogs do not: under exactly-once, a cache
// eviction writes data of a transaction that may still abort. A directory
// left marked by a crash or a lost task cannot be trusted, and is wiped
// and restored from the changelogs when the task opens again.
func (d *TaskDir) MarkUnclean() error {
	f, err := os.OpenFile(filepath.Join(d.path, uncleanFile), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("statedir: mark task directory %s: %w", d.path, err)
	}
	return f.Close()
}

// MarkClean records that the task's stores hold exactly what their
// committed changelogs do: the task committed and closed cleanly.
func (d *TaskDir) MarkClean() error {
	if err := os.Remove(filepath.Join(d.path, uncleanFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("statedir: mark task directory %s: %w", d.path, err)
	}
	return nil
}

// Unclean reports whether MarkUnclean was called and MarkClean not since.
func (d *TaskDir) Unclean() bool {
	_, err := os.Stat(filepath.Join(d.path, uncleanFile))
	return err == nil
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
