package processor

import (
	"fmt"
)

// Guarantee is a processing guarantee.
type Guarantee int

const (
	// AtLeastOnce commits input offsets after the outputs, changelog and
	// dead-letter records they caused are acknowledged: a crash loses
	// nothing but may process some records again. The default.
	AtLeastOnce Guarantee = iota
	// ExactlyOnce makes each commit interval one Kafka transaction that
	// covers the outputs, changelog, repartition and dead-letter records
	// and the input offsets: consumers reading committed see every
	// record's effects once, whatever crashes.
	ExactlyOnce
)

// String returns "at-least-once" or "exactly-once".
func (g Guarantee) String() string {
	switch g {
	case AtLeastOnce:
		return "at-least-once"
	case ExactlyOnce:
		return "exactly-once"
	}
	return fmt.Sprintf("Guarantee(%d)", int(g))
}
