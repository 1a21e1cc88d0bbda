package query

import "github.com/kappa-streams/kappa/state"

// Backend is what a running instance gives queries. Package kappa
// implements it over its runtime; tests may implement it too.
type Backend interface {
	// Partitions returns how many tasks hold parts of store: keys are
	// spread over them by KeyPartition of their encoding. It returns an
	// error wrapping ErrUnknownStore for a name the topology does not
	// have.
	Partitions(store string) (int32, error)
	// Read runs fn with the store of the task of partition, under the
	// task's lock, if this instance runs that task and it is restored. It
	// returns a *NotAvailableError otherwise.
	Read(store string, partition int32, fn func(state.Reader) error) error
	// Owner returns the query endpoint of the instance running the task of
	// partition, and whether that instance is this one. The endpoint is
	// "" while no owner is known.
	Owner(store string, partition int32) (endpoint string, local bool)
	// StandbyOwners returns the query endpoints of the instances keeping
	// standby copies of the task of partition (kappa.StandbyReplicas).
	StandbyOwners(store string, partition int32) []string
	// Endpoints returns the query endpoints of every instance of the
	// group known from the last assignment, this one included.
	Endpoints() []string
	// Self returns this instance's query endpoint, "" if it has none.
	Self() string
}
