package codec

import (
	"encoding/binary"
	"fmt"

	"github.com/kappa-streams/kappa/window"
)

// windowSuffix is the length of the window after the key: Start and End,
// 8 bytes each.
const windowSuffix = 16

// Windowed returns a codec for the keys of windowed results, built on the
// codec of the record key. Its name wraps the key codec's, for example
// "windowed[string]".
//
// The layout is the key's encoding followed by the window's Start and End,
// each 8 bytes big-endian (two's complement, as Int64 writes them). Decode
// takes the window from the last 16 bytes and gives the rest to the key
// codec, so any key codec works, including ones of variable length. A value
// shorter than 16 bytes is a [*DecodeError] wrapping [ErrSize]; errors of the
// key codec are wrapped in errors naming this codec.
//
// The layout is not Kafka Streams' (its TimeWindowedSerializer writes the key
// and Start only, its SessionWindowedSerializer the key, End and Start), so
// Java consumers need a matching deserializer.
func Windowed[K any](kc Codec[K]) Codec[window.Windowed[K]] {
	return windowedCodec[K]{name: "windowed[" + kc.Name() + "]", key: kc}
}

type windowedCodec[K any] struct {
	name string
	key  Codec[K]
}

func (c windowedCodec[K]) Name() string { return c.name }

func (c windowedCodec[K]) Encode(v window.Windowed[K]) ([]byte, error) {
	kb, err := c.key.Encode(v.Key)
	if err != nil {
		return nil, &EncodeError{Codec: c.name, Err: err}
	}
	b := make([]byte, 0, len(kb)+windowSuffix)
	b = append(b, kb...)
	b = binary.BigEndian.AppendUint64(b, uint64(v.Window.Start))
	b = binary.BigEndian.AppendUint64(b, uint64(v.Window.End))
	return b, nil
}

func (c windowedCodec[K]) Decode(b []byte) (window.Windowed[K], error) {
	var v window.Windowed[K]
	n := len(b) - windowSuffix
	if n < 0 {
		return v, &DecodeError{Codec: c.name, Err: fmt.Errorf("%w: got %d, want at least %d", ErrSize, len(b), windowSuffix)}
	}
	// Cap the key's bytes so a codec that keeps them (Bytes) cannot append
	// over the window.
	k, err := c.key.Decode(b[:n:n])
	if err != nil {
		return v, &DecodeError{Codec: c.name, Err: err}
	}
	v.Key = k
	v.Window.Start = int64(binary.BigEndian.Uint64(b[n:]))
	v.Window.End = int64(binary.BigEndian.Uint64(b[n+8:]))
	return v, nil
}
