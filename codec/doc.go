// Package codec turns typed keys and values into bytes and back.
//
// A [Codec] is given once, where a stream enters the topology
// (stream.From) or leaves it with new types (Stream.To with codecs), and the
// types it fixes flow through every operator in between. The built-ins cover
// the common cases:
//
//	codec.String()       // UTF-8 text, no copy on encode
//	codec.Bytes()        // raw bytes, passed through untouched
//	codec.Int64()        // 8-byte big-endian, the Java LongSerializer layout
//	codec.Float64()      // 8-byte big-endian IEEE 754, the Java DoubleSerializer layout
//	codec.JSON[Click]()  // encoding/json
//	codec.Windowed(kc)   // window.Windowed keys: kc's bytes, then start and end
//
// # Errors
//
// A failed decode returns a [*DecodeError] naming the codec, so the runtime can
// send the record to the dead-letter topic with a precise reason. Encode errors
// are wrapped in [*EncodeError] the same way.
//
// # Nil values
//
// Kafka uses a nil value as a tombstone. Codecs are never asked to decode a nil
// value: sources pass the zero value of T downstream (streams) or treat it as
// a delete (tables). Codecs therefore only ever see real payloads.
package codec
