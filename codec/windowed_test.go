package codec_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/window"
)

func wk[K any](k K, start, end int64) window.Windowed[K] {
	return window.Windowed[K]{Key: k, Window: window.Window{Start: start, End: end}}
}

func TestWindowed(t *testing.T) {
	if got := codec.Windowed(codec.String()).Name(); got != "windowed[string]" {
		t.Fatalf("name: got %q", got)
	}
	if got := codec.Windowed(codec.JSON[click]()).Name(); got != "windowed[json[codec_test.click]]" {
		t.Fatalf("name: got %q", got)
	}

	roundTrip(t, codec.Windowed(codec.String()),
		wk("", 0, 0),
		wk("alice", 1_714_557_600_000, 1_714_557_660_000),
		wk("héllo", -1, 1),
		wk("x", math.MinInt64, math.MaxInt64),
	)
	roundTrip(t, codec.Windowed(codec.Int64()), wk[int64](-7, 10, 20))
	roundTrip(t, codec.Windowed(codec.JSON[click]()), wk(click{User: "u", Article: "a"}, 0, 60_000))
}

func TestWindowedLayout(t *testing.T) {
	b, err := codec.Windowed(codec.String()).Encode(wk("ab", 1, -2))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{'a', 'b', 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}
	if !bytes.Equal(b, want) {
		t.Fatalf("layout: got %x, want %x", b, want)
	}
}

func TestWindowedDecodeErrors(t *testing.T) {
	c := codec.Windowed(codec.String())
	for _, n := range []int{0, 1, 15} {
		_, err := c.Decode(make([]byte, n))
		var de *codec.DecodeError
		if !errors.As(err, &de) || de.Codec != "windowed[string]" || !errors.Is(err, codec.ErrSize) {
			t.Fatalf("%d bytes: got %v (%T), want a DecodeError of windowed[string] wrapping ErrSize", n, err, err)
		}
	}
	if _, err := c.Decode(make([]byte, 16)); err != nil {
		t.Fatalf("16 bytes (empty key): %v", err)
	}

	// The key codec's error is wrapped, naming the windowed codec.
	_, err := codec.Windowed(codec.Int64()).Decode(make([]byte, 3+16))
	var de *codec.DecodeError
	if !errors.As(err, &de) || de.Codec != "windowed[int64]" || !errors.Is(err, codec.ErrSize) {
		t.Fatalf("bad key: got %v, want a DecodeError of windowed[int64] wrapping the key's ErrSize", err)
	}
}

func TestWindowedEncodeError(t *testing.T) {
	boom := errors.New("boom")
	kc := codec.Func("failing", func(string) ([]byte, error) { return nil, boom },
		func(b []byte) (string, error) { return string(b), nil })
	_, err := codec.Windowed(kc).Encode(wk("k", 0, 1))
	var ee *codec.EncodeError
	if !errors.As(err, &ee) || ee.Codec != "windowed[failing]" || !errors.Is(err, boom) {
		t.Fatalf("got %v, want an EncodeError of windowed[failing] wrapping boom", err)
	}
}

// A key codec that keeps the decoded bytes (Bytes) must not be able to
// write over the window that follows them.
func TestWindowedKeyCannotClobberWindow(t *testing.T) {
	c := codec.Windowed(codec.Bytes())
	b, err := c.Encode(wk([]byte("key"), 5, 6))
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(b)
	v, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(v.Key, "xxxxxxxxxxxxxxxxxxxx"...)
	if !bytes.Equal(b, orig) {
		t.Fatalf("appending to the decoded key changed the input: %x, was %x", b, orig)
	}
}

func TestWindowedEncodeAllocatesOnce(t *testing.T) {
	c := codec.Windowed(codec.String())
	v := wk("some-user-id", 1_714_557_600_000, 1_714_557_660_000)
	if n := testing.AllocsPerRun(100, func() { _, _ = c.Encode(v) }); n != 1 {
		t.Fatalf("Encode allocated %v times, want 1", n)
	}
}

func FuzzWindowedCodec(f *testing.F) {
	f.Add("", int64(0), int64(0), []byte{})
	f.Add("alice", int64(1_714_557_600_000), int64(1_714_557_660_000), []byte("alice\x00\x00\x01\x8f\x33\xf4\x5c\x00\x00\x00\x01\x8f\x33\xf5\x46\x60"))
	f.Add("héllo", int64(-1), int64(math.MaxInt64), []byte{1, 2, 3})
	f.Add("\xff\xfe", int64(math.MinInt64), int64(-5), make([]byte, 15))
	f.Add("k", int64(7), int64(3), make([]byte, 16))
	c := codec.Windowed(codec.String())
	f.Fuzz(func(t *testing.T, key string, start, end int64, raw []byte) {
		// Round trip.
		in := wk(key, start, end)
		b, err := c.Encode(in)
		if err != nil {
			t.Fatalf("encode %v: %v", in, err)
		}
		if len(b) != len(key)+16 {
			t.Fatalf("encode %v: %d bytes, want %d", in, len(b), len(key)+16)
		}
		out, err := c.Decode(b)
		if err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		if out != in {
			t.Fatalf("round trip: got %v, want %v", out, in)
		}

		// Arbitrary bytes decode to a value or a DecodeError, never a panic;
		// with a string key every value of 16 bytes or more decodes, and
		// encodes back to the same bytes.
		v, err := c.Decode(raw)
		if len(raw) < 16 {
			var de *codec.DecodeError
			if !errors.As(err, &de) || de.Codec != "windowed[string]" {
				t.Fatalf("decode %x: got %v, want a DecodeError", raw, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("decode %x: %v", raw, err)
		}
		again, err := c.Encode(v)
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("decode %x then encode: got %x, %v", raw, again, err)
		}
	})
}
