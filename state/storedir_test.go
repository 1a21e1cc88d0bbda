package state

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// logRecorder is a slog.Handler that keeps the records logged to it.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// warnings returns the "error" attribute of each warning logged.
func (h *logRecorder) warnings() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []error
	for _, r := range h.recs {
		if r.Level != slog.LevelWarn {
			continue
		}
		var err error
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" {
				err, _ = a.Value.Any().(error)
			}
			return true
		})
		out = append(out, err)
	}
	return out
}

// openKind opens the persistent store of a kind in dir, logging to log.
func openKind(kind storeKind, dir string, log *slog.Logger) (Engine, error) {
	if kind == kindSegmented {
		return OpenSegmented(SegmentedOptions{Dir: dir, Interval: 1000, Retention: 1 << 40, LevelDB: LevelDBOptions{Logger: log}})
	}
	return OpenLevelDB(dir, LevelDBOptions{Logger: log})
}

// storedKey is a key either kind of store takes: a window key, which
// falls in segment 1000 of a segmented store.
var storedKey = AppendWindowKey(nil, []byte("k"), 1500, 1500)

// fill returns a setup that writes a store of kind in dir, holding
// storedKey and a changelog position, and closes it.
func fill(kind storeKind) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		e, err := openKind(kind, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		write(t, e, func(b *Batch) { b.Put(storedKey, []byte("v")); b.SetMeta("offset", []byte("7")) })
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// then chains setups.
func then(steps ...func(t *testing.T, dir string)) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		for _, s := range steps {
			s(t, dir)
		}
	}
}

// unmark removes the format marker, as in a directory written before
// markers existed.
func unmark(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, formatFile)); err != nil {
		t.Fatal(err)
	}
}

// garble returns a setup that overwrites the files matching pattern,
// under dir, with garbage.
func garble(pattern string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		files, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil || len(files) == 0 {
			t.Fatalf("no %s in %s (%v)", pattern, dir, err)
		}
		for _, f := range files {
			if err := os.WriteFile(f, []byte("\x00garbage\xff"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// marker returns a setup that replaces the format marker with content.
func marker(content string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, formatFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rawLevelDB creates a plain LevelDB in dir, as the code before markers
// did when it opened a key-value store where a segmented one was.
func rawLevelDB(t *testing.T, dir string) {
	t.Helper()
	e, err := openLevelDB(dir, LevelDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
}

// TestStoreDirectoryFormat opens stores in directories left by other
// stores, formats and versions: a directory the store can use keeps its
// data; any other is discarded, with a logged reason, and the store opens
// empty and usable.
func TestStoreDirectoryFormat(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		open  storeKind
		kept  bool
	}{
		{"leveldb reopened", fill(kindLevelDB), kindLevelDB, true},
		{"segmented reopened", fill(kindSegmented), kindSegmented, true},
		{"unmarked leveldb", then(fill(kindLevelDB), unmark), kindLevelDB, true},
		{"unmarked segmented", then(fill(kindSegmented), unmark), kindSegmented, true},
		{"leveldb where segmented was", fill(kindSegmented), kindLevelDB, false},
		{"leveldb where unmarked segmented was", then(fill(kindSegmented), unmark), kindLevelDB, false},
		{"leveldb where segmented and leveldb were", then(fill(kindSegmented), unmark, rawLevelDB), kindLevelDB, false},
		{"segmented where leveldb was", fill(kindLevelDB), kindSegmented, false},
		{"segmented where unmarked leveldb was", then(fill(kindLevelDB), unmark), kindSegmented, false},
		{"garbage CURRENT", then(fill(kindLevelDB), garble("CURRENT")), kindLevelDB, false},
		{"garbage MANIFEST", then(fill(kindLevelDB), garble("MANIFEST-*")), kindLevelDB, false},
		{"unmarked garbage CURRENT", then(fill(kindLevelDB), unmark, garble("CURRENT")), kindLevelDB, false},
		{"garbage segment CURRENT", then(fill(kindSegmented), garble("1000/CURRENT")), kindSegmented, false},
		{"garbage meta MANIFEST", then(fill(kindSegmented), garble("meta/MANIFEST-*")), kindSegmented, false},
		{"newer leveldb version", then(fill(kindLevelDB), marker(`{"kind":"leveldb","version":2}`)), kindLevelDB, false},
		{"newer segmented version", then(fill(kindSegmented), marker(`{"kind":"segmented","version":2}`)), kindSegmented, false},
		{"unknown kind", then(fill(kindLevelDB), marker(`{"kind":"pebble","version":1}`)), kindLevelDB, false},
		{"unreadable marker", then(fill(kindLevelDB), marker("\x00")), kindLevelDB, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			c.setup(t, dir)
			rec := &logRecorder{}
			e, err := openKind(c.open, dir, slog.New(rec))
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			v, ok, err := e.Get(storedKey)
			if err != nil {
				t.Fatal(err)
			}
			off, offOK, err := e.Meta("offset")
			if err != nil {
				t.Fatal(err)
			}
			warnings := rec.warnings()
			if c.kept {
				if !ok || string(v) != "v" || !offOK || string(off) != "7" {
					t.Fatalf("data lost: key %q %v, offset %q %v", v, ok, off, offOK)
				}
				if len(warnings) != 0 {
					t.Fatalf("kept store logged %v", warnings)
				}
			} else {
				if ok || offOK {
					t.Fatalf("discarded store holds key %q %v, offset %q %v", v, ok, off, offOK)
				}
				if n, err := e.ApproximateCount(); err != nil || n != 0 {
					t.Fatalf("discarded store counts %d keys (%v)", n, err)
				}
				if len(warnings) != 1 || !errors.Is(warnings[0], ErrUnusableStore) {
					t.Fatalf("discarded store logged %v, want one warning with ErrUnusableStore", warnings)
				}
				t.Logf("logged: %v", warnings[0])
			}
			// Either way the store is usable, marked, and keeps what it
			// is given.
			other := AppendWindowKey(nil, []byte("other"), 2500, 2500)
			write(t, e, func(b *Batch) { b.Put(other, []byte("w")) })
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if c.open == kindSegmented {
				// The new segment is covered by the store's marker.
				if _, err := os.Stat(filepath.Join(dir, "2000", formatFile)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("a segment has a marker of its own: %v", err)
				}
			}
			b, err := os.ReadFile(filepath.Join(dir, formatFile))
			if err != nil {
				t.Fatal(err)
			}
			var f storeFormat
			if err := json.Unmarshal(b, &f); err != nil || f != (storeFormat{Kind: c.open, Version: formatVersion}) {
				t.Fatalf("marker %q (%v), want kind %s version %d", b, err, c.open, formatVersion)
			}
			rec = &logRecorder{}
			e, err = openKind(c.open, dir, slog.New(rec))
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer e.Close()
			if v, ok := get(t, e, string(other)); !ok || v != "w" {
				t.Fatalf("after reopen: %q %v", v, ok)
			}
			if w := rec.warnings(); len(w) != 0 {
				t.Fatalf("reopen logged %v", w)
			}
		})
	}
}

// TestStoreDirectoryForeignFiles checks that a directory holding files
// Kappa did not write is left alone, and the open fails.
func TestStoreDirectoryForeignFiles(t *testing.T) {
	for _, kind := range []storeKind{kindLevelDB, kindSegmented} {
		t.Run(string(kind), func(t *testing.T) {
			dir := t.TempDir()
			notes := filepath.Join(dir, "notes.txt")
			if err := os.WriteFile(notes, []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
			e, err := openKind(kind, dir, nil)
			if !errors.Is(err, ErrUnusableStore) {
				if e != nil {
					e.Close()
				}
				t.Fatalf("open: %v, want ErrUnusableStore", err)
			}
			if _, err := os.Stat(notes); err != nil {
				t.Fatalf("the foreign file is gone: %v", err)
			}
		})
	}
}
