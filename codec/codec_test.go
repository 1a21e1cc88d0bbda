package codec_test

import (
	"errors"
	"math"
	"testing"

	"github.com/kappa-streams/kappa/codec"
)

func roundTrip[T comparable](t *testing.T, c codec.Codec[T], vals ...T) {
	t.Helper()
	for _, v := range vals {
		b, err := c.Encode(v)
		if err != nil {
			t.Fatalf("%s: encode %v: %v", c.Name(), v, err)
		}
		got, err := c.Decode(b)
		if err != nil {
			t.Fatalf("%s: decode %v: %v", c.Name(), v, err)
		}
		if got != v {
			t.Fatalf("%s: round trip %v: got %v", c.Name(), v, got)
		}
	}
}

type click struct {
	User    string `json:"user"`
	Article string `json:"article"`
	Bot     bool   `json:"bot"`
}

func TestRoundTrip(t *testing.T) {
	roundTrip(t, codec.String(), "", "a", "héllo")
	roundTrip(t, codec.Int64(), 0, 1, -1, math.MaxInt64, math.MinInt64)
	roundTrip(t, codec.Float64(), 0, 1.5, -2.25, math.MaxFloat64)
	roundTrip(t, codec.JSON[click](), click{}, click{User: "u", Article: "a", Bot: true})
}

func TestJavaLayout(t *testing.T) {
	// Kafka's LongSerializer writes 1 as 00..01.
	b, _ := codec.Int64().Encode(1)
	if want := []byte{0, 0, 0, 0, 0, 0, 0, 1}; string(b) != string(want) {
		t.Fatalf("int64 layout: got %x want %x", b, want)
	}
	b, _ = codec.Float64().Encode(1)
	if want := []byte{0x3f, 0xf0, 0, 0, 0, 0, 0, 0}; string(b) != string(want) {
		t.Fatalf("float64 layout: got %x want %x", b, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		codec string
		run   func() error
	}{
		{"json", "json[codec_test.click]", func() error { _, err := codec.JSON[click]().Decode([]byte("{not json")); return err }},
		{"int64", "int64", func() error { _, err := codec.Int64().Decode([]byte{1, 2}); return err }},
		{"float64", "float64", func() error { _, err := codec.Float64().Decode(nil); return err }},
		{"func", "upper", func() error {
			c := codec.Func("upper", func(s string) ([]byte, error) { return []byte(s), nil },
				func(b []byte) (string, error) { return "", errors.New("boom") })
			_, err := c.Decode([]byte("x"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			var de *codec.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v (%T), want *codec.DecodeError", err, err)
			}
			if de.Codec != tt.codec {
				t.Fatalf("codec name: got %q want %q", de.Codec, tt.codec)
			}
		})
	}
	_, err := codec.Int64().Decode([]byte{1})
	if !errors.Is(err, codec.ErrSize) {
		t.Fatalf("int64 short decode: %v does not wrap ErrSize", err)
	}
}

func TestBytesNoCopy(t *testing.T) {
	in := []byte("abc")
	out, _ := codec.Bytes().Decode(in)
	if &out[0] != &in[0] {
		t.Fatal("Bytes().Decode copied its input")
	}
}

func TestJSONEncodeError(t *testing.T) {
	_, err := codec.JSON[func()]().Encode(func() {})
	var ee *codec.EncodeError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v, want *codec.EncodeError", err)
	}
}
