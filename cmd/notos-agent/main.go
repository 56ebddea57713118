// Command notos-agent provisions a minimal Linux system from a cloud's
// config-2 drive: kernel modules, SSH keys, hostname and network.
//
// This package is thin: it parses flags and makes one call into agent (or
// into the package that owns the command). Exit status: 0 success, 1 failure
// with one line on stderr naming the step and what is at fault, 2 usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/notos-agent/notos-agent/agent"
)

// version is stamped by the Makefile from git describe.
var version = "dev"

// command is one subcommand. run gets the arguments after the command name
// and returns the exit status.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"version", "print the version", cmdVersion},
		{"modprobe", "load kernel modules and their dependencies", cmdModprobe},
		{"show", "print what the config drive says (secrets only as present/absent)", cmdShow},
		{"keys", "install the drive's SSH keys and host name", cmdKeys},
		{"mkdrive", "write a config-2 drive image to test an image locally", cmdMkdrive},
		{"run", "provision this machine at boot: every step, bounded in time", cmdRun},
		{"status", "print what the last run did, the leases and the keys in effect", cmdStatus},
		{"net", "bring the network up (static or DHCP), or keep the DHCP leases", cmdNet},
	}
}

func main() {
	os.Exit(dispatch(os.Args, os.Stdout, os.Stderr))
}

func dispatch(argv []string, stdout, stderr io.Writer) int {
	// Installed as runit's /etc/runit/1, the binary is stage 1 itself.
	if len(argv) > 0 && agent.IsStageOne(argv[0]) {
		return stageOne(argv[1:], stdout, stderr)
	}
	if len(argv) < 2 {
		usage(stderr)
		return 2
	}
	name, args := argv[1], argv[2:]
	switch name {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "notos-agent: unknown command %q\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: notos-agent COMMAND [flags]\n\nProvision this machine from a cloud config-2 drive.\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'notos-agent COMMAND --help' for a command's flags.\n")
}

// newFlags makes a command's flag set: errors are returned, not fatal, and
// --help prints "Usage: notos-agent NAME ARGS" with the flags.
func newFlags(name, args, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output() // stdout after --help, stderr otherwise
		fmt.Fprintf(out, "Usage: notos-agent %s %s\n\n%s\n", name, args, about)
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(out)
		if b.Len() > 0 {
			fmt.Fprintf(out, "\nFlags:\n%s", b.String())
		}
	}
	return fs
}

// parseFlags parses args; it returns the exit status to use and false when
// the command must stop: 0 after --help (printed to stdout), 2 on a usage error.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (int, bool) {
	// Parse prints the usage itself on -h as on an error: hold that back,
	// so that --help goes to stdout alone and an error to stderr alone.
	stderr := fs.Output()
	var msg strings.Builder
	fs.SetOutput(&msg)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return 0, false
	case err != nil:
		io.WriteString(stderr, msg.String())
		return 2, false
	}
	return 0, true
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "", "Print the version.", stderr)
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	fmt.Fprintf(stdout, "notos-agent %s\n", version)
	return 0
}

// fail prints the one line that a failed command leaves on stderr:
// "notos-agent: STEP: what failed on what".
func fail(stderr io.Writer, step string, err error) int {
	fmt.Fprintf(stderr, "notos-agent: %s: %v\n", step, err)
	return 1
}
