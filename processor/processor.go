package processor

import (
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/kappa-streams/kappa/state"
)

// Processor is a node written against the Processor API: it sees every
// record with its timestamp and headers, can read the input record's topic,
// partition and offset from its Context, and forwards zero or more records.
//
// One Processor value exists per task, created by the supplier given to
// stream.Process. Its methods run on the task's goroutine, one record at a
// time, so a Processor needs no locking for its own fields.
type Processor[KIn, VIn, KOut, VOut any] interface {
	// Init is called once, before the first record, with the context the
	// processor keeps to forward records.
	Init(ctx Context[KOut, VOut]) error
	// Process handles one record. A returned error, or a panic, sends the
	// input record to the dead-letter topic (or stops the app under
	// fail-fast).
	Process(rec Record[KIn, VIn]) error
	// Close is called once when the task closes.
	Close() error
}

// Context is a processor's view of its task.
type Context[K, V any] interface {
	// Forward sends rec to every child node. Errors downstream are
	// reported as the error of the input record once Process returns.
	Forward(rec Record[K, V])
	// ForwardTo sends rec to the named child only. Forwarding to a name
	// that is not a child is an error of the input record.
	ForwardTo(child string, rec Record[K, V])
	// RecordMetadata locates the input record being processed.
	RecordMetadata() RecordMetadata
	// TaskID returns the task this processor instance belongs to.
	TaskID() TaskID
	// AppID returns the application ID.
	AppID() string
	// Logger returns the app's logger with app and task attributes set.
	Logger() *slog.Logger
	// Schedule calls fn every interval of stream time or wall-clock time,
	// on the task's goroutine, between records; fn may forward records
	// and use stores. It returns a function that cancels the schedule.
	Schedule(interval time.Duration, kind PunctuationType, fn func(now time.Time) error) (cancel func())
	// Store returns a state store of this task by name; use KeyValueStore
	// for typed access.
	Store(name string) (Store, bool)
}

// KeyValueStore returns the typed key-value store name, declared for the
// processor with stream.WithStore(stream.KeyValueStore(...)). Call it in
// Init and keep the result.
func KeyValueStore[K, V any](ctx interface{ Store(string) (Store, bool) }, name string) (state.KeyValue[K, V], error) {
	s, ok := ctx.Store(name)
	if !ok {
		return nil, fmt.Errorf("processor: no state store %q; declare it with stream.WithStore on this Process", name)
	}
	kv, ok := s.(state.KeyValue[K, V])
	if !ok {
		return nil, fmt.Errorf("processor: store %q is %T, not a key-value store of (%s, %s)", name, s, reflect.TypeFor[K](), reflect.TypeFor[V]())
	}
	return kv, nil
}

// WindowStore returns the window or session store name of the node whose
// context is ctx, declared with stream.WindowStore or stream.SessionStore
// and stream.WithStore.
func WindowStore[K, V any](ctx interface{ Store(string) (Store, bool) }, name string) (state.WindowStore[K, V], error) {
	s, ok := ctx.Store(name)
	if !ok {
		return nil, fmt.Errorf("processor: no state store %q; declare it with stream.WithStore(stream.WindowStore(...)) on this Process", name)
	}
	ws, ok := s.(state.WindowStore[K, V])
	if !ok {
		return nil, fmt.Errorf("processor: store %q is %T, not a window store of (%s, %s)", name, s, reflect.TypeFor[K](), reflect.TypeFor[V]())
	}
	return ws, nil
}

// Func adapts a function to a Processor with no state of its own: Init and
// Close do nothing.
type Func[KIn, VIn, KOut, VOut any] func(ctx Context[KOut, VOut], rec Record[KIn, VIn]) error

// Supply returns a supplier of fresh Func processors, for stream.Process.
func (f Func[KIn, VIn, KOut, VOut]) Supply() func() Processor[KIn, VIn, KOut, VOut] {
	return func() Processor[KIn, VIn, KOut, VOut] { return &funcProcessor[KIn, VIn, KOut, VOut]{fn: f} }
}

type funcProcessor[KIn, VIn, KOut, VOut any] struct {
	fn  Func[KIn, VIn, KOut, VOut]
	ctx Context[KOut, VOut]
}

func (p *funcProcessor[KIn, VIn, KOut, VOut]) Init(ctx Context[KOut, VOut]) error {
	p.ctx = ctx
	return nil
}

func (p *funcProcessor[KIn, VIn, KOut, VOut]) Process(rec Record[KIn, VIn]) error {
	return p.fn(p.ctx, rec)
}

func (p *funcProcessor[KIn, VIn, KOut, VOut]) Close() error { return nil }
