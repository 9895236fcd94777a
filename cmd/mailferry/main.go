// Command mailferry moves a mail domain off an old IMAP + SMTP server.
//
// With no arguments it opens the desktop assistant. Subcommands:
//
//	mailferry serve                  run the IMAP front end, migration engine and relay headless
//	mailferry domain add|list|delete|migrate|route|dkim|users|test-send|readiness
//	mailferry account add|list|passwd|delete
//	mailferry migrate --domain D --users users.csv
//	mailferry status [--json]
//	mailferry verify ADDRESS
//	mailferry queue list|retry|hold|delete
//	mailferry store copy --to TARGET.json
//	mailferry store adopt-bucket [--delete-unnamed]
//
// Exit codes: 0 success, 1 the operation failed, 2 bad usage or input.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strings"
)

// usageError marks an error caused by how mailferry was called (exit 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

const usage = `Usage: mailferry [COMMAND] [OPTIONS]

With no command, opens the Mailferry desktop assistant.

Commands:
  serve      run Mailferry headless (IMAP front end, migration engine, SMTP relay)
  domain     add, list, delete domains; turn migration from an old server on or off;
             choose how outbound mail leaves (route: old server, direct MX, smarthost);
             DNS records to publish (dkim); the old server's users (users --import);
             prove the outbound route (test-send); whether migration can end (readiness)
  account    add, list, delete accounts; change a password
  migrate    pre-migrate users of a domain in bulk from the old server
  status     show migration progress and the relay queue (--json for scripts)
  verify     compare a migrated account with the old server
  queue      list, retry, hold or delete queued outbound mail
  store      copy the store into another engine (store copy --to TARGET.json:
             SQLite + packs into PostgreSQL + S3), verified; adopt-bucket:
             this database is the store's, after a copy or restore used its bucket
  version    print the version

Every command takes --config FILE (default %s)
and --data DIR (default %s).
Run 'mailferry COMMAND -h' for a command's options.
Exit codes: 0 success, 1 failure, 2 bad usage or input.
`

var version = "0.1.0-dev"

// isHelp reports whether a first argument asks for help or the version
// rather than being an option of the assistant (mailferry --data DIR).
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--version":
		return true
	}
	return false
}

func main() {
	stop := startDiagnostic("MAILFERRY_CPUPROFILE", os.Stderr, pprof.StartCPUProfile, pprof.StopCPUProfile)
	stopTrace := startDiagnostic("MAILFERRY_TRACE", os.Stderr, trace.Start, trace.Stop)
	code := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopTrace()
	stop()
	os.Exit(code)
}

// startDiagnostic writes a record of the whole command to the file the
// environment variable env names, if any, and returns what ends it:
// MAILFERRY_CPUPROFILE a CPU profile (`go tool pprof`), MAILFERRY_TRACE a
// Go execution trace (`go tool trace`: what each goroutine waited on,
// and for how long). A file that cannot be written is said on stderr and
// the command runs all the same.
func startDiagnostic(env string, stderr io.Writer, start func(io.Writer) error, stop func()) func() {
	file := os.Getenv(env)
	if file == "" {
		return func() {}
	}
	f, err := os.Create(file)
	if err != nil {
		fmt.Fprintf(stderr, "mailferry: %s: %v\n", env, err)
		return func() {}
	}
	if err := start(f); err != nil {
		fmt.Fprintf(stderr, "mailferry: %s: %v\n", env, err)
		f.Close()
		return func() {}
	}
	return func() {
		stop()
		f.Close()
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || isHelp(args[0])) {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "", "gui":
		err = runGUI(args, stderr)
	case "serve":
		err = runServe(args, stderr)
	case "domain":
		err = runDomain(args, stdin, stdout, stderr)
	case "account":
		err = runAccount(args, stdin, stdout, stderr)
	case "migrate":
		err = runMigrate(args, stdin, stdout, stderr)
	case "status":
		err = runStatus(args, stdout, stderr)
	case "verify":
		err = runVerify(args, stdin, stdout, stderr)
	case "queue":
		err = runQueue(args, stdout, stderr)
	case "store":
		err = runStore(args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "mailferry", version)
	case "help", "-h", "-help", "--help":
		fmt.Fprintf(stdout, usage, defaultConfigFile(), defaultDataDir())
	default:
		fmt.Fprintf(stderr, "mailferry: unknown command %q\n", cmd)
		fmt.Fprintf(stderr, usage, defaultConfigFile(), defaultDataDir())
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "mailferry:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
