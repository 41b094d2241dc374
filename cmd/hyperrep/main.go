// Command hyperrep learns from neural-network weights stored as ONNX: it
// inspects models, turns their weights into tokens and back, permutes hidden
// units and evaluates classifiers. Run "hyperrep help" for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/term"

	"github.com/hyperrep/hyperrep/internal/progress"
)

// command is one subcommand: its flags are declared by setup, which returns
// the function that runs it once flags and arguments are parsed.
type command struct {
	name    string
	args    string // the positional arguments, for the usage line
	summary string
	help    string // paragraphs and examples after the usage line
	setup   func(fs *flag.FlagSet) func(args []string) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// usageError is a mistake in how the command was called: it exits 2 and
// points at --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one invocation and returns the exit status: 0 on success, 1
// when the work failed, 2 when the call itself was wrong.
func run(args []string, stdout, stderr io.Writer) int {
	out, errw = stdout, stderr
	if len(args) == 0 {
		printOverview(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				printHelp(stdout, c)
				return 0
			}
			fmt.Fprintf(stderr, "hyperrep: unknown command %q (see hyperrep help)\n", args[1])
			return 2
		}
		printOverview(stdout)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "hyperrep: unknown command %q (see hyperrep help)\n", name)
		return 2
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runFn := c.setup(fs)
	rest, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stdout, c)
		return 0
	}
	if err == nil {
		err = runFn(rest)
	}
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "hyperrep %s: %v (see hyperrep %s --help)\n", name, oneLine(err), name)
		return 2
	default:
		fmt.Fprintf(stderr, "hyperrep %s: %v\n", name, oneLine(err))
		return 1
	}
}

// out and errw are where commands print results and progress.
var out, errw io.Writer = os.Stdout, os.Stderr

// parseInterleaved parses flags that may stand before, between or after the
// positional arguments ("hyperrep tokenize m.onnx -o t.safetensors"); every
// argument after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			msg := err.Error()
			if rest, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
				msg = "unknown flag " + rest
			}
			return nil, &usageError{msg}
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// newBar starts a progress bar on errw, drawn in place when errw is a
// terminal.
func newBar(label string, total int64, unit string) *progress.Bar {
	f, ok := errw.(*os.File)
	return progress.NewTo(errw, ok && term.IsTerminal(int(f.Fd())), label, total, unit)
}

// oneLine keeps an error to the single line the user sees.
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func printOverview(w io.Writer) {
	fmt.Fprint(w, `hyperrep learns from neural-network weights stored as ONNX.

Usage: hyperrep <command> [arguments] [flags]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `  version      print the version and the ONNX Runtime in use

Run "hyperrep <command> --help" for a command's flags and examples.
ONNX Runtime is found through $ONNXRUNTIME_LIB, then lib/ next to the binary
or in the source tree, then the system's library path ("make setup" fetches it).
`)
}

func printHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: hyperrep %s %s\n\n%s\n", c.name, c.args, c.summary)
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(fs)
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if has {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}
