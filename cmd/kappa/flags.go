package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// usageError is a mistake in how a command was called: a missing argument,
// an unknown flag or a flag value that cannot work. It exits with status 2.
type usageError struct {
	path string // the command, such as "topics create"
	msg  string
}

// Error names the command, the mistake and where to read the help.
func (e *usageError) Error() string {
	return fmt.Sprintf("%s: %s (run 'kappa %s -h' for help)", e.path, e.msg, e.path)
}

// cmdFlags is one command's flag set together with the text its -h prints.
type cmdFlags struct {
	*flag.FlagSet
	path  string // "topics create"
	args  string // positional arguments for the synopsis, such as "TOPIC..."
	about string // what the command does, one or more paragraphs
	conn  bool   // has the connection flags, which help lists apart
}

// newCmdFlags returns an empty flag set for the command at path. The flag
// package's own messages are discarded: parse reports them as errors and
// prints help itself.
func newCmdFlags(path, args, about string) *cmdFlags {
	fs := flag.NewFlagSet("kappa "+path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, path: path, args: args, about: about}
}

// usageErrorf returns a *usageError for this command.
func (c *cmdFlags) usageErrorf(format string, args ...any) error {
	return &usageError{path: c.path, msg: fmt.Sprintf(format, args...)}
}

// parse parses args, in which flags and positional arguments may be mixed
// ("topics create clicks --partitions 6"); "--" ends the flags. It returns the
// positional arguments. For -h or --help it prints the command's help to
// stdout and returns flag.ErrHelp, which the caller passes up: main treats it
// as success.
func (c *cmdFlags) parse(args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			args = args[1:]
			continue
		}
		// Hand the flag package exactly one flag, with its value when the
		// value is the next argument, so that it cannot stop early at a
		// positional argument.
		n := 1
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") {
			if f := c.Lookup(name); f != nil && !isBoolFlag(f) {
				n = min(2, len(args))
			}
		}
		if err := c.Parse(args[:n]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printHelp(stdout)
				return nil, flag.ErrHelp
			}
			return nil, &usageError{path: c.path, msg: err.Error()}
		}
		args = args[n:]
	}
	return pos, nil
}

// isBoolFlag reports whether f takes no value, as --tls does.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// printHelp writes the synopsis, the description and the flags.
func (c *cmdFlags) printHelp(w io.Writer) {
	synopsis := "kappa " + c.path
	if c.hasFlags() {
		synopsis += " [flags]"
	}
	if c.args != "" {
		synopsis += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", synopsis, strings.TrimSpace(c.about))
	own := func(f *flag.Flag) bool { return !c.conn || !connFlagNames[f.Name] }
	if c.hasFlags() {
		fmt.Fprintln(w, "\nFlags:")
		printFlags(w, c.FlagSet, own)
	}
	if c.conn {
		fmt.Fprintln(w, "\nConnection flags:")
		printFlags(w, c.FlagSet, func(f *flag.Flag) bool { return !own(f) })
	}
}

// hasFlags reports whether the command has flags of its own.
func (c *cmdFlags) hasFlags() bool {
	has := false
	c.VisitAll(func(f *flag.Flag) { has = has || !c.conn || !connFlagNames[f.Name] })
	return has
}

// printFlags lists the flags of fs for which keep is true as
// "--name VALUE  usage (default x)", aligned. It spells flags with two
// dashes, as the help texts do; the flag package accepts one or two. A usage
// that starts with a back-quoted word names the value with that word, which
// is not repeated in the text.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(*flag.Flag) bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f) {
			return
		}
		valueName, usage := flag.UnquoteUsage(f)
		if rest, ok := strings.CutPrefix(f.Usage, "`"+valueName+"` "); ok {
			usage = rest
		}
		if isBoolFlag(f) {
			valueName = ""
		}
		name := "--" + f.Name
		if valueName != "" {
			name += " " + valueName
		}
		switch d := f.DefValue; d {
		case "", "0", "0s", "false":
		default:
			if _, err := strconv.ParseFloat(d, 64); err != nil {
				d = strconv.Quote(d)
			}
			usage += " (default " + d + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, usage)
	})
	tw.Flush()
}

// intFlag is an int flag with bounds. Its error names them, so the flag
// package's message says what to write instead.
type intFlag struct {
	v   int
	min int
	max int  // 0 means no upper bound
	set bool // given on the command line
}

// String returns the value in decimal.
func (f *intFlag) String() string {
	if f == nil {
		return "0"
	}
	return strconv.Itoa(f.v)
}

// Set parses a whole number within the bounds.
func (f *intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	switch {
	case err != nil || n < f.min:
		return fmt.Errorf("want a whole number of at least %d", f.min)
	case f.max > 0 && n > f.max:
		return fmt.Errorf("want a whole number of at most %d", f.max)
	}
	f.v, f.set = n, true
	return nil
}

// durationFlag is a non-negative duration flag whose error shows the syntax.
type durationFlag struct{ v time.Duration }

// String returns the duration as time.Duration prints it.
func (f *durationFlag) String() string {
	if f == nil || f.v == 0 {
		return "0s"
	}
	return f.v.String()
}

// Set parses a non-negative duration such as 5s.
func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return errors.New("want a duration such as 500ms, 5s or 1m30s")
	}
	f.v = d
	return nil
}

// configFlag collects repeated key=value flags.
type configFlag struct{ m map[string]string }

// String returns the pairs sorted by key, comma-separated.
func (f *configFlag) String() string {
	if f == nil || len(f.m) == 0 {
		return ""
	}
	kvs := make([]string, 0, len(f.m))
	for _, k := range slices.Sorted(maps.Keys(f.m)) {
		kvs = append(kvs, k+"="+f.m[k])
	}
	return strings.Join(kvs, ",")
}

// Set adds one key=value pair; a later pair for a key replaces an earlier.
func (f *configFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return errors.New("want key=value, such as cleanup.policy=compact; repeat the flag for more")
	}
	if f.m == nil {
		f.m = make(map[string]string)
	}
	f.m[strings.TrimSpace(k)] = v
	return nil
}

// sepFlag is a separator. A value with a backslash is read as a Go string
// body, so "\t" is a tab however the shell passed it.
type sepFlag struct{ v string }

// String returns the separator itself.
func (f *sepFlag) String() string {
	if f == nil {
		return ""
	}
	return f.v
}

// Set stores s, reading backslash escapes.
func (f *sepFlag) Set(s string) error {
	if strings.Contains(s, `\`) {
		u, err := strconv.Unquote(`"` + s + `"`)
		if err != nil {
			return errors.New(`want a literal separator or an escape such as \t; write a backslash as \\`)
		}
		s = u
	}
	f.v = s
	return nil
}
