package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// The client side of the control plane: every command finds the running
// master's socket in the control directory (--name picks one when several
// run), sends one request and prints the answer as a table or, with
// -o json, as JSON.

// clientFlags are the flags every client command takes.
type clientFlags struct {
	name   string
	output string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.name, "name", "", "the master to talk to (default: the only one running)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "", "output format: json (default: a table for people)")
}

func (f *clientFlags) json() (bool, error) {
	switch f.output {
	case "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, usageError("-o %q: the only format is json", f.output)
}

// connect checks -o and finds the master.
func (f *clientFlags) connect() (*client, bool, error) {
	asJSON, err := f.json()
	if err != nil {
		return nil, false, err
	}
	c, err := dialMaster(f.name)
	return c, asJSON, err
}

// client talks HTTP to one master's control socket.
type client struct {
	name string
	sock string
	http *http.Client
}

// errNoMaster and friends exit 1, with one clear line.
func noMaster(format string, args ...any) error {
	return &exitError{code: exitFailure, err: fmt.Errorf(format, args...)}
}

// dialMaster finds the master: --name, else the only one running.
func dialMaster(name string) (*client, error) {
	home, err := launchHome()
	if err != nil {
		return nil, noMaster("%v", err)
	}
	if err := validName(name); name != "" && err != nil {
		return nil, usageError("%v", err)
	}
	if _, err := os.Stat(home); err == nil {
		if err := checkHome(home); err != nil {
			return nil, noMaster("%v", err)
		}
	}
	if name != "" {
		c := newClient(home, name)
		if err := c.ping(); err != nil {
			return nil, err
		}
		return c, nil
	}
	names, err := masterSockets(home)
	if err != nil {
		return nil, noMaster("control directory %s: %v", home, err)
	}
	var live []*client
	for _, n := range names {
		c := newClient(home, n)
		if c.ping() == nil {
			live = append(live, c)
		}
	}
	switch len(live) {
	case 0:
		return nil, noMaster("no launch master is running (no live control socket in %s); start one with `launch APPFILE`", home)
	case 1:
		return live[0], nil
	}
	var ns []string
	for _, c := range live {
		ns = append(ns, c.name)
	}
	return nil, noMaster("%d masters are running (%s); pick one with --name", len(live), strings.Join(ns, ", "))
}

func newClient(home, name string) *client {
	sock := filepath.Join(home, name+".sock")
	return &client{name: name, sock: sock, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}}
}

// ping checks that a master answers on the socket.
func (c *client) ping() error {
	conn, err := net.DialTimeout("unix", c.sock, 2*time.Second)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ENOENT):
			return noMaster("no launch master named %q is running (no socket %s)", c.name, c.sock)
		case errors.Is(err, syscall.ECONNREFUSED):
			return noMaster("no launch master named %q is running (stale socket %s)", c.name, c.sock)
		case errors.Is(err, syscall.EACCES):
			return noMaster("cannot reach master %q: permission denied on %s (it belongs to another user)", c.name, c.sock)
		}
		return noMaster("cannot reach master %q at %s: %v", c.name, c.sock, err)
	}
	conn.Close()
	return nil
}

// do sends one request; a non-2xx answer becomes an error with the
// master's message.
func (c *client) do(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	u := "http://launch" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, noMaster("master %q: %v", c.name, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		code := exitFailure
		if resp.StatusCode == http.StatusBadRequest {
			code = exitUsage // the request itself was wrong: a bad argument
		}
		return nil, &exitError{code: code, err: errors.New(e.Error)}
	}
	return resp, nil
}

// getJSON sends a request and decodes the JSON answer into v.
func (c *client) getJSON(ctx context.Context, method, path string, q url.Values, v any) error {
	resp, err := c.do(ctx, method, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("master %q: bad answer: %w", c.name, err)}
	}
	return nil
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func newLsCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "ls [APP]",
		Aliases: []string{"list", "status"},
		Short:   "List the workers of the running master (state, pid, uptime, restarts, cpu, memory)",
		Example: "  launch ls\n  launch ls web -o json | jq '.[] | select(.state != \"online\")'",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := f.connect()
			if err != nil {
				return err
			}
			q := url.Values{}
			if len(args) == 1 {
				q.Set("app", args[0])
			}
			var rows []workerJSON
			if err := c.getJSON(cmd.Context(), "GET", "/v1/ls", q, &rows); err != nil {
				return err
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), rows)
				return nil
			}
			printWorkers(cmd.OutOrStdout(), rows, isTerminal(os.Stdout))
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

// printWorkers writes `ls`'s table.
func printWorkers(w io.Writer, rows []workerJSON, color bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	proxied := slices.ContainsFunc(rows, func(r workerJSON) bool { return r.Requests != nil })
	head := "APP\tINSTANCE\tPID\tSTATE\tUPTIME\tRESTARTS\tCPU\tMEMORY"
	if proxied {
		head += "\tREQUESTS"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		pid, uptime, cpu, mem := "-", "-", "-", "-"
		if r.PID != 0 {
			pid = strconv.Itoa(r.PID)
			uptime = shortDuration(time.Duration(r.UptimeMS) * time.Millisecond)
			cpu = fmt.Sprintf("%.1f%%", r.CPUPercent)
			if r.MemoryBytes > 0 {
				mem = bytesString(r.MemoryBytes)
			}
		}
		inst := strconv.Itoa(r.Instance)
		if r.Incoming {
			inst += " (new)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s", r.App, inst, pid, colorState(r.State, color), uptime, r.Restarts, cpu, mem)
		if proxied {
			req := "-"
			if r.Requests != nil {
				req = strconv.FormatUint(*r.Requests, 10)
			}
			fmt.Fprintf(tw, "\t%s", req)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func colorState(s string, color bool) string {
	if !color {
		return s
	}
	code := "33" // yellow: on the way somewhere
	switch s {
	case "online":
		code = "32"
	case "errored", "unknown":
		code = "31"
	case "stopped":
		code = "90"
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// shortDuration writes d like pm2: 45s, 12m, 3h, 2D.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dD", int(d.Hours()/24))
}

func newDescribeCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "describe APP",
		Aliases: []string{"show", "info"},
		Short:   "Show one app: settings, workers, last exits and restart history with reasons",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := f.connect()
			if err != nil {
				return err
			}
			var d describeJSON
			if err := c.getJSON(cmd.Context(), "GET", "/v1/describe", url.Values{"app": {args[0]}}, &d); err != nil {
				return err
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), d)
				return nil
			}
			printDescribe(cmd.OutOrStdout(), &d)
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func printDescribe(w io.Writer, d *describeJSON) {
	fmt.Fprintf(w, "app:        %s\n", d.App)
	fmt.Fprintf(w, "command:    %s\n", strings.Join(d.Command, " "))
	fmt.Fprintf(w, "cwd:        %s\n", d.Dir)
	fmt.Fprintf(w, "instances:  %d\n", d.Instances)
	if len(d.Listen) > 0 {
		fmt.Fprintf(w, "listen:     %s (%s)\n", strings.Join(d.Listen, ", "), d.Balance)
	}
	fmt.Fprintf(w, "ready:      %s\n", d.Ready)
	if d.MaxMemory > 0 {
		fmt.Fprintf(w, "max memory: %s\n", bytesString(d.MaxMemory))
	}
	if d.Stopped {
		fmt.Fprintf(w, "stopped by request (`launch start %s` starts it)\n", d.App)
	}
	if len(d.Restarts) > 0 {
		var parts []string
		for _, k := range sortedKeys(d.Restarts) {
			parts = append(parts, fmt.Sprintf("%s %d", k, d.Restarts[k]))
		}
		fmt.Fprintf(w, "restarts:   %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	printWorkers(w, d.Workers, false)
	for _, s := range d.Slots {
		if s.LastExit == nil && len(s.Log) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s.%d:", d.App, s.Instance)
		if s.LastExit != nil {
			fmt.Fprintf(w, " last exit %s at %s", s.LastExit.Text, s.LastExit.At.Format(time.DateTime))
		}
		fmt.Fprintln(w)
		for _, r := range s.Log {
			line := fmt.Sprintf("  %s  %-14s", r.At.Format(time.DateTime), r.Reason)
			if r.PID != 0 {
				line += fmt.Sprintf(" pid %d", r.PID)
			}
			if r.Exit != "" {
				line += " " + r.Exit
			}
			fmt.Fprintln(w, line)
		}
	}
}

// newAppOpCmd is stop, start, restart: one verb on NAME|all.
func newAppOpCmd(op, short string) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   op + " APP|all",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runOp(cmd, &f, "/v1/"+op, url.Values{"app": {args[0]}})
		},
	}
	f.add(cmd)
	return cmd
}

func runOp(cmd *cobra.Command, f *clientFlags, path string, q url.Values) error {
	c, asJSON, err := f.connect()
	if err != nil {
		return err
	}
	var res opResult
	if err := c.getJSON(cmd.Context(), "POST", path, q, &res); err != nil {
		return err
	}
	if asJSON {
		printJSON(cmd.OutOrStdout(), res)
		return nil
	}
	fmt.Fprintln(cmd.OutOrStdout(), res.Msg)
	return nil
}

func newSignalCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "signal APP|all SIGNAL",
		Short:   "Send a signal to every worker's process group of an app (USR2, HUP, TERM, ... or a number)",
		Example: "  launch signal web USR2",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := parseSignal(args[1]); err != nil {
				return usageError("%v", err)
			}
			return runOp(cmd, &f, "/v1/signal", url.Values{"app": {args[0]}, "sig": {args[1]}})
		},
	}
	f.add(cmd)
	return cmd
}

// negPrefix stands in for the minus sign of "scale web -1" while cobra
// parses flags (see protectNegative).
const negPrefix = "\x00neg"

var negativeNumber = regexp.MustCompile(`^-[0-9]+$`)

// protectNegative lets `launch scale web -1` mean minus one, not a flag:
// after the word scale, an argument like -1 is hidden from the flag parser.
func protectNegative(args []string) []string {
	for i, a := range args {
		if a == "scale" {
			out := append([]string(nil), args...)
			for j := i + 1; j < len(out); j++ {
				if out[j] == "--" {
					break
				}
				if negativeNumber.MatchString(out[j]) {
					out[j] = negPrefix + out[j][1:]
				}
			}
			return out
		}
	}
	return args
}

func newScaleCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "scale APP N|+N|-N",
		Short:   "Change how many workers an app runs, live (new ones start; removed ones drain and stop)",
		Example: "  launch scale web 4\n  launch scale web +1\n  launch scale web -1",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := args[1]
			if rest, ok := strings.CutPrefix(n, negPrefix); ok {
				n = "-" + rest
			}
			v, err := strconv.Atoi(n)
			if err != nil {
				return usageError("scale: %q is not a count: want N, +N or -N", n)
			}
			if !strings.HasPrefix(n, "+") && !strings.HasPrefix(n, "-") && (v < 1 || v > 1024) {
				return usageError("scale: %d: want 1 to 1024 instances (use `launch stop` to stop the app)", v)
			}
			return runOp(cmd, &f, "/v1/scale", url.Values{"app": {args[0]}, "n": {n}})
		},
	}
	f.add(cmd)
	return cmd
}

func newLogsCmd() *cobra.Command {
	var f clientFlags
	var follow bool
	var lines int
	cmd := &cobra.Command{
		Use:   "logs [APP|APP.N|all]",
		Short: "Print the recent output of an app's workers; -f keeps printing new lines",
		Example: `  launch logs web --lines 100
  launch logs web.0 -f`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			if lines < 0 {
				return usageError("--lines %d: want a number ≥ 0", lines)
			}
			c, err := dialMaster(f.name)
			if err != nil {
				return err
			}
			q := url.Values{"lines": {strconv.Itoa(lines)}}
			if len(args) == 1 {
				q.Set("app", args[0])
			}
			if follow {
				q.Set("follow", "1")
			}
			resp, err := c.do(cmd.Context(), "GET", "/v1/logs", q)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			color := !asJSON && isTerminal(os.Stdout)
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			for sc.Scan() {
				if asJSON {
					out.Write(sc.Bytes())
					out.WriteByte('\n')
				} else {
					var l logLineJSON
					if json.Unmarshal(sc.Bytes(), &l) != nil {
						continue
					}
					printLogLine(out, l, color)
				}
				if follow {
					out.Flush()
				}
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().IntVarP(&lines, "lines", "n", 15, "how many recent lines to print")
	return cmd
}

func printLogLine(w io.Writer, l logLineJSON, color bool) {
	if l.Worker == "launch" {
		fmt.Fprintln(w, l.Text)
		return
	}
	prefix := l.Worker + " |" // as on the master's terminal; -o json has stderr
	if color {
		code := "36"
		if l.Stderr {
			code = "33" // stderr in yellow, on a terminal
		}
		prefix = "\x1b[" + code + "m" + prefix + "\x1b[0m"
	}
	fmt.Fprintf(w, "%s %s\n", prefix, l.Text)
}

func newReloadCmd() *cobra.Command {
	var f clientFlags
	var parallel int
	cmd := &cobra.Command{
		Use:   "reload APP|all",
		Short: "Zero-downtime rolling reload: re-read the app file, replace workers one slot at a time (new one ready first)",
		Long: `reload re-reads the app file and replaces every worker of APP (or of every
app) slot by slot: start the new worker, wait until it is ready, then stop the
old one. The new workers run what is on disk now and the file's new settings.
An invalid file changes nothing. If a new worker fails, the reload stops there
and the old workers keep serving; the exit code is then 1. With all, apps added
to the file start and removed ones stop. A reload asked while one runs is
refused (exit 1), not queued.`,
		Example: "  launch reload web\n  launch reload all --parallel 2 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			if parallel < 1 {
				return usageError("--parallel %d: want a number ≥ 1", parallel)
			}
			c, err := dialMaster(f.name)
			if err != nil {
				return err
			}
			resp, err := c.do(cmd.Context(), "POST", "/v1/reload", url.Values{"app": {args[0]}, "parallel": {strconv.Itoa(parallel)}})
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			return readReload(cmd.OutOrStdout(), resp.Body, asJSON, !asJSON && isTerminal(os.Stdout))
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&parallel, "parallel", 1, "slots of an app replaced at the same time")
	return cmd
}

// readReload prints a reload's NDJSON progress and returns its outcome.
func readReload(w io.Writer, body io.Reader, asJSON, tty bool) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var res *reloadResult
	open := false // a TTY line is being rewritten
	for sc.Scan() {
		var msg struct {
			Event  *reloadEvent  `json:"event"`
			Result *reloadResult `json:"result"`
		}
		if json.Unmarshal(sc.Bytes(), &msg) != nil {
			continue
		}
		if msg.Result != nil {
			res = msg.Result
			break
		}
		ev := msg.Event
		if ev == nil || asJSON {
			continue
		}
		line := describeStep(ev)
		if tty {
			fmt.Fprintf(w, "\r\x1b[K%s", line)
			open = true
			if ev.Phase == "done" || ev.Phase == "failed" || ev.Instance < 0 {
				fmt.Fprintln(w)
				open = false
			}
		} else {
			fmt.Fprintln(w, line)
		}
	}
	if open {
		fmt.Fprintln(w)
	}
	if res == nil {
		return &exitError{code: exitFailure, err: errors.New("reload: the master stopped answering before the reload finished (it may still be running; see `launch ls`)")}
	}
	if asJSON {
		printJSON(w, res)
	} else if res.OK {
		n := 0
		for _, a := range res.Apps {
			n += a.Replaced
		}
		fmt.Fprintf(w, "reload done: %d %s replaced in %s\n", n, plural(n, "worker"), (time.Duration(res.DurationMS) * time.Millisecond).String())
	}
	if !res.OK {
		return &exitError{code: exitFailure, err: fmt.Errorf("reload failed: %s", res.Error)}
	}
	return nil
}

func describeStep(ev *reloadEvent) string {
	if ev.Instance < 0 {
		s := fmt.Sprintf("%s: %s", ev.App, ev.Phase)
		if ev.Msg != "" {
			s += " (" + ev.Msg + ")"
		}
		return s
	}
	slot := fmt.Sprintf("%s.%d", ev.App, ev.Instance)
	if ev.OldPID == 0 { // the slot had no process to replace
		switch ev.Phase {
		case "starting":
			return fmt.Sprintf("%s: starting pid %d", slot, ev.PID)
		case "ready", "done":
			return fmt.Sprintf("%s: pid %d ready", slot, ev.PID)
		case "failed":
			return fmt.Sprintf("%s: FAILED: %s", slot, ev.Msg)
		}
	}
	switch ev.Phase {
	case "starting":
		return fmt.Sprintf("%s: starting pid %d (replaces %d)", slot, ev.PID, ev.OldPID)
	case "ready":
		return fmt.Sprintf("%s: pid %d ready → stopping %d", slot, ev.PID, ev.OldPID)
	case "done":
		return fmt.Sprintf("%s: pid %d ready, old %d stopped", slot, ev.PID, ev.OldPID)
	case "failed":
		return fmt.Sprintf("%s: FAILED: %s (old pid %d keeps serving)", slot, ev.Msg, ev.OldPID)
	}
	return fmt.Sprintf("%s: %s", slot, ev.Phase)
}
