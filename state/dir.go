package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/storage"
)

// ErrUnusableStore describes a store directory that holds something other
// than the store being opened: another kind of store (a window store
// where a key-value store was, after a topology change), a format newer
// than this version of Kappa writes, or a LevelDB that goleveldb reports
// corrupt. OpenLevelDB and OpenSegmented delete such a directory and
// start the store empty, so that it is restored from its changelog, and
// log the reason, which wraps ErrUnusableStore. They return it only for a
// non-empty directory holding none of the files Kappa writes, which they
// leave alone.
var ErrUnusableStore = errors.New("state: unusable store directory")

// storeKind names what a store directory holds, in its format marker.
type storeKind string

const (
	kindLevelDB   storeKind = "leveldb"   // OpenLevelDB: one LevelDB
	kindSegmented storeKind = "segmented" // OpenSegmented: meta/ and a LevelDB per segment
)

const (
	// formatFile is the name of a store directory's format marker.
	formatFile = "KAPPA-STORE"
	// formatVersion is the version of the stores' on-disk format that
	// this code reads and writes, for every kind. A change that older
	// code cannot read raises it, and older code then discards the store.
	formatVersion = 1
)

// storeFormat is the content of a format marker, as JSON.
type storeFormat struct {
	Kind    storeKind `json:"kind"`
	Version int       `json:"version"`
}

// dirState is what checkStoreDir found in a store directory.
type dirState int

const (
	dirFresh    dirState = iota // missing or empty: mark it, then create the store
	dirMarked                   // marked with this kind and version
	dirUnmarked                 // of this kind, written before markers: mark it once open
	dirDiscard                  // holds something else: delete it and start afresh
)

// openMarked opens the store of kind in dir with open, minding the
// directory's format marker: a directory that holds something else, or
// that open finds corrupt, is deleted (the reason logged to log, which may
// be nil) and opened again, empty. open must leave nothing open when it
// fails.
func openMarked[E io.Closer](dir string, kind storeKind, log *slog.Logger, open func() (E, error)) (E, error) {
	var zero E
	st, reason, err := checkStoreDir(dir, kind)
	if err != nil {
		return zero, err
	}
	if st == dirDiscard {
		if err := discardStoreDir(dir, reason, log); err != nil {
			return zero, err
		}
		st = dirFresh
	}
	if st == dirFresh {
		if err := markStoreDir(dir, kind); err != nil {
			return zero, err
		}
	}
	e, err := open()
	if err != nil && isCorrupted(err) {
		if err := discardStoreDir(dir, fmt.Errorf("%w: %s is unreadable: %w", ErrUnusableStore, dir, err), log); err != nil {
			return zero, err
		}
		if err := markStoreDir(dir, kind); err != nil {
			return zero, err
		}
		st = dirFresh
		e, err = open()
	}
	if err != nil {
		return zero, err
	}
	if st == dirUnmarked {
		if err := markStoreDir(dir, kind); err != nil {
			e.Close()
			return zero, err
		}
	}
	return e, nil
}

// checkStoreDir reads the format marker of dir and says what to do with
// it. For dirDiscard, reason says why, wrapping ErrUnusableStore. err
// reports a failure to read dir, or a directory to leave alone.
//
// An unmarked directory, written before markers existed, is recognised
// by its files: a plain LevelDB (CURRENT, MANIFEST-…, …) is of the
// LevelDB kind, a meta/ subdirectory (beside the numeric segment
// directories) of the segmented kind.
func checkStoreDir(dir string, kind storeKind) (st dirState, reason, err error) {
	b, err := os.ReadFile(filepath.Join(dir, formatFile))
	switch {
	case err == nil:
		var f storeFormat
		switch err := json.Unmarshal(b, &f); {
		case err != nil:
			return dirDiscard, fmt.Errorf("%w: %s: unreadable %s: %v", ErrUnusableStore, dir, formatFile, err), nil
		case f.Kind != kind:
			return dirDiscard, fmt.Errorf("%w: %s holds a %s store, not a %s store", ErrUnusableStore, dir, f.Kind, kind), nil
		case f.Version != formatVersion:
			return dirDiscard, fmt.Errorf("%w: %s holds format version %d of a %s store; this version of Kappa reads version %d",
				ErrUnusableStore, dir, f.Version, kind, formatVersion), nil
		}
		return dirMarked, nil, nil
	case !errors.Is(err, fs.ErrNotExist):
		return 0, nil, fmt.Errorf("state: store directory %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return dirFresh, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("state: store directory %s: %w", dir, err)
	}
	var leveldbFiles, segmentedFiles, others bool
	for _, e := range entries {
		switch name := e.Name(); {
		case strings.HasPrefix(name, formatFile): // a marker's temporary file
		case name == "meta" && e.IsDir():
			segmentedFiles = true
		case isLevelDBFile(name) && !e.IsDir():
			leveldbFiles = true
		case isDigits(name) && e.IsDir():
			// A segment: counts only beside meta/.
		default:
			others = true
		}
	}
	var found storeKind
	switch {
	case leveldbFiles && segmentedFiles:
		return dirDiscard, fmt.Errorf("%w: %s holds both a %s and a %s store", ErrUnusableStore, dir, kindLevelDB, kindSegmented), nil
	case leveldbFiles:
		found = kindLevelDB
	case segmentedFiles:
		found = kindSegmented
	case others:
		return 0, nil, fmt.Errorf("%w: %s holds files that Kappa did not write; move them or delete the directory", ErrUnusableStore, dir)
	default:
		return dirFresh, nil, nil
	}
	if found != kind {
		return dirDiscard, fmt.Errorf("%w: %s holds a %s store, not a %s store", ErrUnusableStore, dir, found, kind), nil
	}
	return dirUnmarked, nil, nil
}

// isLevelDBFile reports whether name is one goleveldb gives its files.
func isLevelDBFile(name string) bool {
	switch name {
	case "CURRENT", "CURRENT.bak", "LOCK", "LOG", "LOG.old":
		return true
	}
	if rest, ok := strings.CutPrefix(name, "MANIFEST-"); ok {
		return isDigits(rest)
	}
	if rest, ok := strings.CutPrefix(name, "CURRENT."); ok {
		return isDigits(rest)
	}
	num, ext, ok := strings.Cut(name, ".")
	return ok && isDigits(num) && (ext == "ldb" || ext == "log" || ext == "sst" || ext == "tmp")
}

// isDigits reports whether s is a non-empty run of ASCII digits, or one
// with a leading minus sign (a segment of negative times).
func isDigits(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isCorrupted reports whether err says that goleveldb found a database it
// cannot read.
func isCorrupted(err error) bool {
	var c *lerrors.ErrCorrupted
	var sc *storage.ErrCorrupted
	return errors.As(err, &c) || errors.As(err, &sc)
}

// discardStoreDir deletes a store directory that holds something else,
// logging why.
func discardStoreDir(dir string, reason error, log *slog.Logger) error {
	if log != nil {
		log.Warn("discarding unusable local store; it starts empty and is restored from its changelog", "dir", dir, "error", reason)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("state: discard store directory %s: %w", dir, err)
	}
	return nil
}

// markStoreDir creates dir if needed and writes its format marker,
// atomically (write, sync, rename).
func markStoreDir(dir string, kind storeKind) error {
	b, err := json.Marshal(storeFormat{Kind: kind, Version: formatVersion})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state: store directory %s: %w", dir, err)
	}
	tmp := filepath.Join(dir, formatFile+".tmp")
	f, err := os.Create(tmp)
	if err == nil {
		_, err = f.Write(append(b, '\n'))
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, formatFile))
	}
	if err != nil {
		return fmt.Errorf("state: mark store directory %s: %w", dir, err)
	}
	return nil
}

// ErrLocked is returned when another instance (or another App in this
// process) holds a task's state directory.
var ErrLocked = errors.New("state: task directory is locked by another instance")
