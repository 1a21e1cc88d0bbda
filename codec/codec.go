package codec

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"unsafe"
)

// Codec encodes values of type T to bytes and decodes them back.
//
// Implementations must be safe for concurrent use: one codec value serves
// every task of an application. Decode may keep a reference to b only when
// the codec documents it (Bytes does); the runtime never reuses record buffers.
type Codec[T any] interface {
	// Name identifies the codec in errors and in Topology.Describe.
	Name() string
	// Encode returns the serialized form of v.
	Encode(v T) ([]byte, error)
	// Decode parses b into a T.
	Decode(b []byte) (T, error)
}

// DecodeError reports bytes that a codec could not decode.
type DecodeError struct {
	Codec string // the codec's Name
	Err   error  // the underlying parse error
}

func (e *DecodeError) Error() string { return "codec: " + e.Codec + " decode: " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError reports a value that a codec could not encode.
type EncodeError struct {
	Codec string // the codec's Name
	Err   error  // the underlying error
}

func (e *EncodeError) Error() string { return "codec: " + e.Codec + " encode: " + e.Err.Error() }
func (e *EncodeError) Unwrap() error { return e.Err }

// ErrSize is the cause of a DecodeError when a fixed-size codec is given the
// wrong number of bytes.
var ErrSize = errors.New("wrong number of bytes")

// Func builds a Codec from two functions, for formats without a built-in.
// Errors returned by the functions are wrapped in DecodeError and EncodeError.
func Func[T any](name string, encode func(T) ([]byte, error), decode func([]byte) (T, error)) Codec[T] {
	return funcCodec[T]{name: name, enc: encode, dec: decode}
}

type funcCodec[T any] struct {
	name string
	enc  func(T) ([]byte, error)
	dec  func([]byte) (T, error)
}

func (c funcCodec[T]) Name() string { return c.name }

func (c funcCodec[T]) Encode(v T) ([]byte, error) {
	b, err := c.enc(v)
	if err != nil {
		return nil, &EncodeError{Codec: c.name, Err: err}
	}
	return b, nil
}

func (c funcCodec[T]) Decode(b []byte) (T, error) {
	v, err := c.dec(b)
	if err != nil {
		var zero T
		return zero, &DecodeError{Codec: c.name, Err: err}
	}
	return v, nil
}

// String returns a codec for UTF-8 strings. It does not validate UTF-8: any
// bytes decode, as with Kafka's StringDeserializer.
//
// Encode does not copy: the returned bytes share the string's memory and
// must not be modified (the Kafka client only reads them). Decode copies,
// so a string a program keeps does not pin the fetched batch in memory.
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Name() string { return "string" }

func (stringCodec) Encode(v string) ([]byte, error) {
	if v == "" {
		return []byte{}, nil
	}
	return unsafe.Slice(unsafe.StringData(v), len(v)), nil
}

func (stringCodec) Decode(b []byte) (string, error) { return string(b), nil }

// Bytes returns a codec that passes bytes through. Decode returns b itself,
// without copying; the runtime never reuses record buffers, so this is safe.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Name() string                    { return "bytes" }
func (bytesCodec) Encode(v []byte) ([]byte, error) { return v, nil }
func (bytesCodec) Decode(b []byte) ([]byte, error) { return b, nil }

// Int64 returns a codec for int64 as 8 big-endian bytes, the layout of
// Kafka's LongSerializer, so Java producers and consumers interoperate.
func Int64() Codec[int64] { return int64Codec{} }

type int64Codec struct{}

func (int64Codec) Name() string { return "int64" }

func (int64Codec) Encode(v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(v)), nil
}

func (int64Codec) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, &DecodeError{Codec: "int64", Err: fmt.Errorf("%w: got %d, want 8", ErrSize, len(b))}
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// Float64 returns a codec for float64 as 8 big-endian IEEE 754 bytes, the
// layout of Kafka's DoubleSerializer.
func Float64() Codec[float64] { return float64Codec{} }

type float64Codec struct{}

func (float64Codec) Name() string { return "float64" }

func (float64Codec) Encode(v float64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), math.Float64bits(v)), nil
}

func (float64Codec) Decode(b []byte) (float64, error) {
	if len(b) != 8 {
		return 0, &DecodeError{Codec: "float64", Err: fmt.Errorf("%w: got %d, want 8", ErrSize, len(b))}
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
}

// JSON returns a codec that uses encoding/json. Its name includes the Go type,
// for example "json[main.Click]".
func JSON[T any]() Codec[T] {
	return jsonCodec[T]{name: "json[" + reflect.TypeFor[T]().String() + "]"}
}

type jsonCodec[T any] struct{ name string }

func (c jsonCodec[T]) Name() string { return c.name }

func (c jsonCodec[T]) Encode(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &EncodeError{Codec: c.name, Err: err}
	}
	return b, nil
}

func (c jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		var zero T
		return zero, &DecodeError{Codec: c.name, Err: err}
	}
	return v, nil
}
