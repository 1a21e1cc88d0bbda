// Command bench compares Kappa with a hand-written franz-go loop and with
// goka on the same workloads, on one embedded broker in this process.
//
//	go run . stateless -records 500000
//
// Each workload is a subcommand in its own file that registers itself with
// register. Progress goes to stderr; the Markdown table and the final
// "RESULT ..." line go to stdout. docs/benchmarks.md describes the method
// and records the figures.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// command is one workload.
type command struct {
	name    string
	summary string
	run     func(args []string) error
}

var commands []command

// register adds a subcommand. Workload files call it from init.
func register(c command) { commands = append(commands, c) }

func main() {
	slices.SortFunc(commands, func(a, b command) int { return strings.Compare(a.name, b.name) })
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(os.Stderr, "bench: unknown workload %q\n\n", name)
		usage()
		os.Exit(2)
	}
	if err := commands[i].run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", name, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: go run . <workload> [flags]\n\nworkloads:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun go run . <workload> -h for its flags.\n")
}
