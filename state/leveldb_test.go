package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

// openBenchLevelDB opens a LevelDB engine holding n keys "key-%08d".
func openBenchLevelDB(b *testing.B, n int) Engine {
	b.Helper()
	e, err := OpenLevelDB(b.TempDir(), LevelDBOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	var batch Batch
	for i := range n {
		batch.Put(fmt.Appendf(nil, "key-%08d", i), []byte("value-0123456789"))
	}
	if err := e.Write(&batch); err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkLevelDB measures the engine operations of the hot path: a
// point read, the same from every CPU, a batch write and a short range.
func BenchmarkLevelDB(b *testing.B) {
	const keys = 10000
	b.Run("Get", func(b *testing.B) {
		e := openBenchLevelDB(b, keys)
		b.ReportAllocs()
		i := 0
		k := make([]byte, 0, 16)
		for b.Loop() {
			k = fmt.Appendf(k[:0], "key-%08d", i%keys)
			if _, ok, err := e.Get(k); err != nil || !ok {
				b.Fatal(ok, err)
			}
			i++
		}
	})
	b.Run("GetParallel", func(b *testing.B) {
		e := openBenchLevelDB(b, keys)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			k := make([]byte, 0, 16)
			for pb.Next() {
				k = fmt.Appendf(k[:0], "key-%08d", i%keys)
				if _, ok, err := e.Get(k); err != nil || !ok {
					b.Error(ok, err)
					return
				}
				i++
			}
		})
	})
	b.Run("Write100", func(b *testing.B) {
		e := openBenchLevelDB(b, 0)
		var batch Batch
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			batch.Reset()
			for range 100 {
				batch.Put(fmt.Appendf(nil, "key-%08d", i%keys), []byte("value-0123456789"))
				i++
			}
			batch.SetMeta("offset", []byte("42"))
			if err := e.Write(&batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Range100", func(b *testing.B) {
		e := openBenchLevelDB(b, keys)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			n := 0
			start := fmt.Appendf(nil, "key-%08d", i%(keys-100))
			if err := e.Range(start, nil, func(_, _ []byte) bool { n++; return n < 100 }); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// TestLevelDBCloseWaitsForRange checks that Close waits for a Range in
// progress, whose iterator stays usable, and that calls made meanwhile
// return ErrClosed.
func TestLevelDBCloseWaitsForRange(t *testing.T) {
	e, err := OpenLevelDB(t.TempDir(), LevelDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, e, func(b *Batch) {
		for _, k := range []string{"a", "b", "c"} {
			b.Put([]byte(k), []byte("v"))
		}
	})
	closed := make(chan error, 1)
	var seen []string
	err = e.Range(nil, nil, func(k, _ []byte) bool {
		seen = append(seen, string(k))
		if len(seen) > 1 {
			return true
		}
		go func() { closed <- e.Close() }()
		// Wait until Close is waiting: from then on, calls fail at once.
		for {
			if _, _, err := e.Get([]byte("a")); errors.Is(err, ErrClosed) {
				break
			} else if err != nil {
				t.Errorf("Get while Close begins: %v", err)
				break
			}
			runtime.Gosched()
		}
		select {
		case err := <-closed:
			t.Errorf("Close returned (%v) while Range iterated", err)
		default:
		}
		return true
	})
	if err != nil {
		t.Fatalf("Range across a Close: %v", err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(seen, want) {
		t.Fatalf("Range across a Close saw %q, want %q", seen, want)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.Range(nil, nil, func(_, _ []byte) bool { return true }); err != ErrClosed {
		t.Fatalf("Range after Close: %v, want ErrClosed", err)
	}
}

// TestSegmentedClosed checks that a closed segmented engine reports
// ErrClosed for its metadata rather than failing.
func TestSegmentedClosed(t *testing.T) {
	for name, dir := range map[string]string{"memory": "", "leveldb": t.TempDir()} {
		t.Run(name, func(t *testing.T) {
			s, err := OpenSegmented(SegmentedOptions{Dir: dir, Interval: 1000, Retention: 1 << 40})
			if err != nil {
				t.Fatal(err)
			}
			write(t, s, func(b *Batch) { b.Put(AppendWindowKey(nil, []byte("k"), 1500, 1500), []byte("v")) })
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Meta("offset"); err != ErrClosed {
				t.Fatalf("Meta after Close: %v, want ErrClosed", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

// TestSegmentedExpiresSegmentBeingRead: a Range callback that writes, and
// so expires the segment it is reading, must neither deadlock (the
// segment's Close waiting for the read on the same goroutine) nor crash;
// the segment is closed and deleted once the read is over.
func TestSegmentedExpiresSegmentBeingRead(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSegmented(SegmentedOptions{Dir: dir, Interval: 1000, Retention: 1000})
	if err != nil {
		t.Fatal(err)
	}
	write(t, s, func(b *Batch) {
		b.Put(AppendWindowKey(nil, []byte("k"), 1500, 1500), []byte("a"))
		b.Put(AppendWindowKey(nil, []byte("k"), 1600, 1600), []byte("b"))
	})
	done := make(chan error, 1)
	go func() {
		var seen []string
		err := s.Range(AppendWindowKey(nil, []byte("k"), 0, 0), AppendWindowKey(nil, []byte("k"), 10_000, 0), func(k, v []byte) bool {
			seen = append(seen, string(v))
			if len(seen) == 1 {
				write(t, s, func(b *Batch) { b.Put(AppendWindowKey(nil, []byte("k"), 9000, 9000), []byte("c")) })
			}
			return true
		})
		if err == nil && len(seen) == 0 {
			err = fmt.Errorf("the range saw nothing")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a range whose callback expired its segment did not return in 10s: deadlock")
	}
	if got := s.Segments(); !slices.Equal(got, []int64{9000}) {
		t.Fatalf("segments %v, want only [9000]", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "1000")); !os.IsNotExist(err) {
		t.Fatalf("the expired segment's directory is still there after Close: %v", err)
	}
}
