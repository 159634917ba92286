// Command server runs the account service and its admin commands:
//
//	server                          serve (migrates first unless MIGRATE_ON_START=false)
//	server migrate up|down|version|force VERSION  manage the schema
//	server keys rotate              add a signing key that signs from now on
//	server keys reseal              re-encrypt private keys with KEY_ENCRYPTION_KEY
//	server users set-role EMAIL ROLE
//	server clients add ID --public|--confidential, list, remove ID
//
// Configuration is by environment only; see README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "server:", err)
		}
		os.Exit(exitCode(err))
	}
}

// errUsage marks a command used wrongly; it exits 2.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	return 1
}

const usage = `Usage:
  server [serve]                      run the HTTP service (migrates first unless MIGRATE_ON_START=false)
  server migrate up|down|version      apply all, roll back all, or print the schema version
  server migrate force VERSION        mark the schema as at VERSION (after an interrupted migration)
  server keys rotate                  add a signing key that signs from now on
  server keys reseal                  seal the private keys with KEY_ENCRYPTION_KEY
                                      (opening them with OLD_KEY_ENCRYPTION_KEY if needed)
  server users set-role EMAIL ROLE    set a user's role (user or admin)
  server clients add ID --public|--confidential
                                      register an OAuth client (a confidential one's secret is printed once)
  server clients list                 list the OAuth clients
  server clients remove ID            remove a client and end its sessions

Configuration is read from the environment; DATABASE_URL is required.
Run "server COMMAND -h" for a command's help.
`

// run is the whole program, testable: main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, rest := "serve", []string{}
	if len(args) > 1 {
		cmd, rest = args[1], args[2:]
	}
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, getenv, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return cmdKeys(ctx, rest, getenv, stdout, stderr)
	case "users":
		return cmdUsers(ctx, rest, getenv, stdout, stderr)
	case "clients":
		return cmdClients(ctx, rest, getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}

// parseFlags gives every command -h and requires exactly want positional
// arguments.
func parseFlags(name, synopsis string, args []string, want int, out io.Writer) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { fmt.Fprintf(out, "Usage: %s\n", synopsis) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() != want {
		fs.Usage()
		return nil, fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, name, want, fs.NArg())
	}
	return fs.Args(), nil
}

// usageError prints a command's synopsis and returns an errUsage.
func usageError(out io.Writer, synopsis, format string, args ...any) error {
	fmt.Fprintf(out, "Usage: %s\n", synopsis)
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}
