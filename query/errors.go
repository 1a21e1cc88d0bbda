package query

import (
	"errors"
	"fmt"
	"time"
)

// Errors of queries. Test them with errors.Is; a *NotAvailableError
// wraps ErrNotLocal or ErrNotReady with the details.
var (
	// ErrUnknownStore is returned for a store name the topology does not
	// have, or a store that cannot be queried (a join's buffer).
	ErrUnknownStore = errors.New("query: no such queryable store")
	// ErrNotLocal is returned by a local read of a key whose task runs on
	// another instance (or on none, during a rebalance).
	ErrNotLocal = errors.New("query: key is not held by this instance")
	// ErrNotReady is returned while the key's task is being assigned or
	// restored: retry shortly.
	ErrNotReady = errors.New("query: store not ready")
	// ErrWrongType is returned by a typed accessor whose key or value
	// type, or store kind, does not match the store.
	ErrWrongType = errors.New("query: store has other types")
)

// NotAvailableError says why a key's store cannot be read here, and where
// to ask instead.
type NotAvailableError struct {
	Store     string
	Partition int32
	// Owner is the query endpoint of the instance that runs the key's
	// task, "" if none is known (a rebalance is in progress, or the
	// owner advertises no endpoint).
	Owner string
	// Reason is ErrNotLocal or ErrNotReady.
	Reason error
	// RetryAfter suggests when to ask again, for ErrNotReady.
	RetryAfter time.Duration
}

// Error names the store, the partition and the reason.
func (e *NotAvailableError) Error() string {
	s := fmt.Sprintf("%v: store %q partition %d", e.Reason, e.Store, e.Partition)
	if e.Owner != "" {
		s += " (held by " + e.Owner + ")"
	}
	return s
}

// Unwrap returns the reason.
func (e *NotAvailableError) Unwrap() error { return e.Reason }
