package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand of kappa.
type command struct {
	name    string
	summary string
	conn    bool // takes the connection flags
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands lists the subcommands in the order the usage summary shows them.
// "help" is handled by run itself.
var commands = []command{
	{"broker", "run an embedded Kafka-protocol broker until interrupted", false, runBroker},
	{"topics", "list, create, describe or delete topics", true, runTopics},
	{"produce", "write lines from stdin to a topic, one record per line", true, runProduce},
	{"consume", "print a topic's records, one per line", true, runConsume},
	{"groups", "list consumer groups, or describe members, offsets and lag", true, runGroups},
	{"reset", "reset an application to reprocess its input from the start", true, runReset},
	{"describe", "print a topology as text, Graphviz DOT or Mermaid", false, runDescribe},
}

// main runs the command named by os.Args and exits with its status.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling so that a
		// second Ctrl-C ends a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches args (without the program name) to a command and returns
// the exit status: 0 on success or help, 1 when the command failed, 2 for a
// usage error. Errors go to stderr with a "kappa: " prefix. ctx is canceled
// on SIGINT or SIGTERM; commands then stop cleanly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Connection flags may come before the command name; they are checked
	// here and handed to the command.
	top := newCmdFlags("", "", "")
	addConnFlags(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "kappa: %v (only connection flags go before the command; run 'kappa help')\n", err)
		return 2
	}
	rest := top.Args()
	global := args[:len(args)-len(rest)]
	if n := len(global); n > 0 && global[n-1] == "--" {
		global = global[:n-1]
	}
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "kappa: missing command")
		printUsage(stderr)
		return 2
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			printUsage(stdout)
			return 0
		}
		name, rest = rest[0], []string{"-h"}
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(stderr, "kappa: unknown command %q\n\n", name)
		printUsage(stderr)
		return 2
	}
	cmd := commands[i]
	if len(global) > 0 {
		if !cmd.conn {
			return exitStatus(&usageError{path: name, msg: fmt.Sprintf("%s is a connection flag; only %s take them", global[0], connCommands())}, stderr)
		}
		// Put them after the command, and after the action of "topics"
		// and "groups".
		at := 0
		if (name == "topics" || name == "groups") && len(rest) > 0 {
			at = 1
		}
		rest = slices.Insert(slices.Clone(rest), at, global...)
	}
	return exitStatus(cmd.run(ctx, rest, stdin, stdout, stderr), stderr)
}

// exitStatus prints err, if any, and maps it to an exit status.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "kappa: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// connCommands lists the commands that take the connection flags, as
// "a, b and c".
func connCommands() string {
	var names []string
	for _, c := range commands {
		if c.conn {
			names = append(names, c.name)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// printUsage writes the summary of all commands.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `kappa is the command-line tool of Kappa, a stream-processing framework on Kafka.

Usage:
  kappa <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s  %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-9s  %s\n", "help", "print this summary, or a command's help with 'kappa help <command>'")
	fmt.Fprintf(w, `
Connection flags of %s (before or after the command):
`, connCommands())
	cf := newCmdFlags("", "", "")
	addConnFlags(cf)
	printFlags(w, cf.FlagSet, func(*flag.Flag) bool { return true })
	fmt.Fprint(w, `
Run 'kappa <command> -h' for a command's flags. Errors exit with status 1,
usage errors with status 2.
`)
}
