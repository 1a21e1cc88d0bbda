package main

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/window"
	"github.com/twmb/franz-go/pkg/kgo"
)

// formatNames lists the formats of --key-format and --value-format, for
// help and errors.
const formatNames = "string, int64, float64, hex or windowed:FORMAT (FORMAT one of string, int64, float64, hex)"

// fieldFormat turns a key's or value's bytes into the text consume prints.
// It decodes with package codec's own codecs, so the tool reads exactly
// what Kappa applications write.
type fieldFormat struct {
	name   string
	format func(b []byte) (string, error)
}

// plainFormats are the formats of one value, which windowed wraps.
var plainFormats = map[string]func([]byte) (string, error){
	"string": func(b []byte) (string, error) { return codec.String().Decode(b) },
	"int64": func(b []byte) (string, error) {
		v, err := codec.Int64().Decode(b)
		return strconv.FormatInt(v, 10), err
	},
	"float64": func(b []byte) (string, error) {
		v, err := codec.Float64().Decode(b)
		return strconv.FormatFloat(v, 'g', -1, 64), err
	},
	"hex": func(b []byte) (string, error) {
		v, err := codec.Bytes().Decode(b)
		return hex.EncodeToString(v), err
	},
}

// windowedKeys decodes windowed keys, leaving the inner key as bytes for
// the inner format.
var windowedKeys = codec.Windowed(codec.Bytes())

// parseFormat parses the value of flag --<flagName>.
func parseFormat(flagName, s string) (fieldFormat, error) {
	if f, ok := plainFormats[s]; ok {
		return fieldFormat{name: s, format: f}, nil
	}
	inner, ok := strings.CutPrefix(s, "windowed")
	if ok && (inner == "" || strings.HasPrefix(inner, ":")) {
		inner = strings.TrimPrefix(inner, ":")
		if inner == "" {
			inner = "string"
		}
		f, ok := plainFormats[inner]
		if !ok {
			return fieldFormat{}, fmt.Errorf("--%s %q: unknown inner format %q: want windowed:string, windowed:int64, windowed:float64 or windowed:hex", flagName, s, inner)
		}
		return fieldFormat{name: "windowed:" + inner, format: func(b []byte) (string, error) {
			w, err := windowedKeys.Decode(b)
			if err != nil {
				return "", err
			}
			k, err := f(w.Key)
			if err != nil {
				return "", err
			}
			// The window as Kappa prints it: whether End belongs to the
			// window depends on the window type, which the bytes do not
			// say, so no bracket claims either.
			return window.Windowed[string]{Key: k, Window: w.Window}.String(), nil
		}}, nil
	}
	return fieldFormat{}, fmt.Errorf("--%s %q: unknown format: want %s", flagName, s, formatNames)
}

// text formats b; a nil b (no key, or a tombstone) is empty in every
// format. Bytes the format cannot decode come out as
// "<not FORMAT: HEX>", with the error.
func (f fieldFormat) text(b []byte) (string, error) {
	if b == nil {
		return "", nil
	}
	s, err := f.format(b)
	if err != nil {
		return "<not " + f.name + ": " + hex.EncodeToString(b) + ">", err
	}
	return s, nil
}

// headersText formats headers as key=value pairs separated by commas. A
// key or value that holds a comma, a double quote, the field separator
// sep, a control character or invalid UTF-8, or a key that holds '=', is
// written as a double-quoted Go string, so that the field stays on one
// line and splits unambiguously. No headers is an empty field.
func headersText(hs []kgo.RecordHeader, sep string) string {
	var sb strings.Builder
	for i, h := range hs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(quoteHeader(h.Key, sep, "="))
		sb.WriteByte('=')
		sb.WriteString(quoteHeader(string(h.Value), sep, ""))
	}
	return sb.String()
}

// quoteHeader quotes s when it holds a character that would make the
// headers field ambiguous: see headersText.
func quoteHeader(s, sep, extra string) string {
	needs := !utf8.ValidString(s) || strings.ContainsAny(s, `,"`+extra) || (sep != "" && strings.Contains(s, sep))
	for _, r := range s {
		if needs {
			break
		}
		needs = unicode.IsControl(r)
	}
	if needs {
		return strconv.Quote(s)
	}
	return s
}
