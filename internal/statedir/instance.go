package statedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Instance is an app instance's claim on a slot of its state directory,
// <root>/<app>/.instance-<n>: a file holding an ID that is random when
// the slot is first used and the same at every later start. The slot
// stays locked while the instance runs, so two live instances sharing a
// state root never hold the same ID; an instance that crashed and starts
// again on the same root takes the ID its predecessor had.
//
// Under exactly-once the ID names the instance's transactional producer:
// the producer of the restarted instance fences its crashed predecessor's
// and aborts the transaction it left open at once, instead of readers of
// committed data waiting for the transaction timeout.
type Instance struct {
	ID   string
	Slot int
	lock *os.File
}

// maxInstanceSlots bounds the instances sharing one state root.
const maxInstanceSlots = 64

// LockInstance locks the first free instance slot of app under root and
// returns it.
func LockInstance(root, app string) (*Instance, error) {
	dir := filepath.Join(root, app)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("statedir: state directory %s: %w (set a writable one with kappa.StateDir)", dir, err)
	}
	for slot := range maxInstanceSlots {
		path := filepath.Join(dir, fmt.Sprintf(".instance-%d", slot))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("statedir: instance file %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // a live instance holds it
			}
			return nil, fmt.Errorf("statedir: lock %s: %w", path, err)
		}
		id, err := instanceID(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("statedir: instance file %s: %w", path, err)
		}
		return &Instance{ID: id, Slot: slot, lock: f}, nil
	}
	return nil, fmt.Errorf("statedir: %d instances of app %q already use the state directory %s; give each its own with kappa.StateDir", maxInstanceSlots, app, root)
}

// instanceID reads the ID kept in f, writing a new random one if f holds
// none.
func instanceID(f *os.File) (string, error) {
	b := make([]byte, 64)
	n, err := f.ReadAt(b, 0)
	if id := strings.TrimSpace(string(b[:n])); len(id) == 16 && isHex(id) {
		return id, nil
	}
	if err != nil && n == 0 && !errors.Is(err, io.EOF) {
		return "", err
	}
	var raw [8]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	if err := f.Truncate(0); err != nil {
		return "", err
	}
	if _, err := f.WriteAt([]byte(id+"\n"), 0); err != nil {
		return "", err
	}
	return id, f.Sync()
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// Close releases the slot.
func (in *Instance) Close() error {
	if in == nil || in.lock == nil {
		return nil
	}
	syscall.Flock(int(in.lock.Fd()), syscall.LOCK_UN)
	err := in.lock.Close()
	in.lock = nil
	return err
}
