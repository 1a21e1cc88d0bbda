// Package crash lets Kappa's own tests stop a running app as a crash
// would: no final flush, no commit, no leave from the group. A test puts
// a Switch in the context it passes to kappa.App.Run; Run arms the switch
// with its abort, and the test pulls it.
//
// The package is internal, so users have no way to reach it. It exists so
// that the end-to-end tests can live in a package of their own
// (internal/integration) and still crash an app in process; tests that
// need a real crash kill an OS process instead.
package crash

import (
	"context"
	"sync"
)

// Switch aborts the app whose Run was given it.
type Switch struct {
	mu     sync.Mutex
	abort  func()
	pulled bool
}

type key struct{}

// With returns ctx carrying s.
func With(ctx context.Context, s *Switch) context.Context {
	return context.WithValue(ctx, key{}, s)
}

// From returns the switch ctx carries, or nil.
func From(ctx context.Context) *Switch {
	s, _ := ctx.Value(key{}).(*Switch)
	return s
}

// Arm sets what Pull runs. A switch pulled before it was armed aborts at
// once.
func (s *Switch) Arm(abort func()) {
	s.mu.Lock()
	s.abort = abort
	pulled := s.pulled
	s.mu.Unlock()
	if pulled {
		abort()
	}
}

// Pull aborts the app: at once if its Run has armed the switch, or as
// soon as it does.
func (s *Switch) Pull() {
	s.mu.Lock()
	s.pulled = true
	abort := s.abort
	s.mu.Unlock()
	if abort != nil {
		abort()
	}
}
