package smoke

import "fmt"

// Guarantee is the processing guarantee an app runs under, and so the set
// of invariants [Check] applies to its outputs.
type Guarantee string

const (
	// AtLeastOnce is Kappa's default commit mode: outputs are acknowledged
	// before the inputs behind them are committed, so a crash reprocesses
	// the records since the last commit. Nothing is lost; records and
	// aggregate updates may be duplicated.
	AtLeastOnce Guarantee = "at-least-once"
	// ExactlyOnce is Kappa's transactional commit mode
	// (kappa.Guarantee(kappa.ExactlyOnce)): each commit interval is one
	// transaction over the outputs, changelogs, repartition records and
	// input offsets. Readers of committed data see nothing lost and
	// nothing duplicated.
	ExactlyOnce Guarantee = "exactly-once"
)

// ParseGuarantee returns the guarantee named s: "at-least-once" or
// "exactly-once".
func ParseGuarantee(s string) (Guarantee, error) {
	switch g := Guarantee(s); g {
	case AtLeastOnce, ExactlyOnce:
		return g, nil
	default:
		return "", fmt.Errorf("smoke: unknown guarantee %q: want %q or %q", s, AtLeastOnce, ExactlyOnce)
	}
}

// exact reports whether g allows no duplicates.
func (g Guarantee) exact() bool { return g == ExactlyOnce }
