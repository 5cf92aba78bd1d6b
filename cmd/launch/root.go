package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes scripts can rely on.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure, or a stop that was not clean
	exitUsage   = 2 // bad command line or app file; nothing was started
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(protectNegative(args))
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(os.Stderr, "launch: %v\n", ee.err)
		}
		return ee.code
	}
	// cobra's own errors: unknown flag, wrong number of arguments.
	fmt.Fprintf(os.Stderr, "launch: %v\nRun 'launch --help' for usage.\n", err)
	return exitUsage
}

func newRootCmd() *cobra.Command {
	var o masterOptions
	cmd := &cobra.Command{
		Use:   "launch [flags] APPFILE",
		Short: "Run an app's workers on every CPU, sharing its sockets, restarting crashes, reloading without downtime",
		Long: `launch runs the apps of an app file (YAML, JSON, or PM2's ecosystem.config.js) in
the foreground: it binds each app's listen addresses once, starts its workers
(one per CPU with -i max), hands them the sockets the systemd way (fd 3,
LISTEN_FDS, LISTEN_PID), restarts workers that crash, and replaces them one by
one on SIGHUP or ` + "`launch reload`" + `. Other commands talk to the running master over
its control socket: ls, describe, stop, start, restart, scale, logs, signal,
reload.

Signals to the master:
  SIGINT, SIGTERM   graceful stop: stop signal to every worker, SIGKILL after
                    kill_timeout; a second one stops everything at once
  SIGHUP            re-read the app file and reload every app (= launch reload all)
  SIGTTIN, SIGTTOU  one more / one fewer worker of every app
  SIGQUIT           immediate stop (SIGKILL to every worker)

Exit codes: 0 after a clean stop, 1 on a runtime failure or forced stop,
2 on a usage or app file error (nothing was started). Other commands: 0 done,
1 failed (no master, no such app, a failed reload), 2 bad usage.`,
		Example: `  launch -i max app.yaml        # one worker per CPU
  launch app.yaml -i 2          # flags may follow the file
  launch --env production ecosystem.config.js`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			if _, err := os.Stat(o.file); err != nil && !strings.ContainsAny(o.file, "./") {
				if s := cmd.SuggestionsFor(o.file); len(s) > 0 {
					return usageError("%q is neither a command nor a file; did you mean `launch %s`?", o.file, s[0])
				}
			}
			return runMaster(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVarP(&o.instances, "instances", "i", "", "workers per app: N, `max` (one per CPU), or -N (CPUs minus N); overrides the app file")
	cmd.Flags().StringVar(&o.name, "name", "", "name of this master: its control socket, its log (default: the app file's base name)")
	cmd.Flags().StringVar(&o.env, "env", "", "use the app file's env_NAME section over env (PM2's --env)")
	cmd.Flags().StringVar(&o.only, "only", "", "run only the app with this name")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError("%v\nRun '%s --help' for usage.", err, c.CommandPath())
	})
	cmd.AddCommand(newVersionCmd(), newLsCmd(), newDescribeCmd(),
		newAppOpCmd("stop", "Stop an app's workers and keep them stopped (its sockets stop listening)"),
		newAppOpCmd("start", "Start the workers of an app that was stopped, or that is errored"),
		newAppOpCmd("restart", "Stop and start every worker of an app at once (blunt; reload has no downtime)"),
		newScaleCmd(), newLogsCmd(), newSignalCmd(), newReloadCmd(), newBenchCmd())
	cmd.SuggestionsMinimumDistance = 2
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print launch's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "launch", version)
		},
	}
}
