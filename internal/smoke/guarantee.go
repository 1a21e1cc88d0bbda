package smoke

import (
	"errors"
	"fmt"
)

// Guarantee is the processing guarantee an app runs under, and so the set
// of invariants [Check] applies to its outputs.
type Guarantee string

const (
	// AtLeastOnce is Kappa's commit mode today: outputs are acknowledged
	// before the inputs behind them are committed, so a crash reprocesses
	// the records since the last commit. Nothing is lost; records and
	// aggregate updates may be duplicated.
	AtLeastOnce Guarantee = "at-least-once"
	// ExactlyOnce is reserved for the transactional commit mode Kappa does
	// not have yet: nothing lost, nothing duplicated. Check applies its
	// invariants already; ParseGuarantee rejects it until apps can run it.
	ExactlyOnce Guarantee = "exactly-once"
)

// ErrUnsupported is returned by ParseGuarantee for a guarantee Kappa cannot
// run yet.
var ErrUnsupported = errors.New("smoke: guarantee not supported by Kappa yet")

// ParseGuarantee returns the guarantee named s. Only "at-least-once" is
// accepted today; "exactly-once" returns an error wrapping ErrUnsupported.
func ParseGuarantee(s string) (Guarantee, error) {
	switch g := Guarantee(s); g {
	case AtLeastOnce:
		return g, nil
	case ExactlyOnce:
		return "", fmt.Errorf("%w: %q (Kappa commits at-least-once only)", ErrUnsupported, s)
	default:
		return "", fmt.Errorf("smoke: unknown guarantee %q: want %q", s, AtLeastOnce)
	}
}

// exact reports whether g allows no duplicates.
func (g Guarantee) exact() bool { return g == ExactlyOnce }
