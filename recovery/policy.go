package recovery

import (
	"fmt"
	"slices"
	"time"

	"github.com/launch-go/launch/config"
	"github.com/launch-go/launch/workers"
)

// PM2's numbers (lib/God/ and lib/Worker.js in Unitech/pm2).
const (
	// backoffFactor and backoffCap are PM2's exp_backoff_restart_delay:
	// prev × 1.5, capped at 15 s.
	backoffFactor = 1.5
	backoffCap    = 15 * time.Second
	// backoffReset is PM2's EXP_BACKOFF_RESET_TIMER: a run this long
	// resets the backoff to its first step.
	backoffReset = 30 * time.Second
	// DefaultBackoff is the first step of the backoff launch applies when
	// the app sets neither restart_delay nor exp_backoff_restart_delay.
	DefaultBackoff = 100 * time.Millisecond
)

// Policy is an app's restart rules, from its PM2 keys.
type Policy struct {
	Autorestart   bool
	StopExitCodes []int
	MaxRestarts   int
	MinUptime     time.Duration
	// RestartDelay is a fixed delay; used when ExpBackoff is 0.
	RestartDelay time.Duration
	// ExpBackoff is the first step of exponential backoff.
	ExpBackoff time.Duration
}

// PolicyFor returns app's restart rules. When the app sets no delay at
// all, launch backs off exponentially from DefaultBackoff (PM2 would
// restart at once, forever: Unitech/pm2#1496).
func PolicyFor(app *config.App) Policy {
	p := Policy{
		Autorestart:   app.Autorestart,
		StopExitCodes: app.StopExitCodes,
		MaxRestarts:   app.MaxRestarts,
		MinUptime:     app.MinUptime,
		RestartDelay:  app.RestartDelay,
		ExpBackoff:    app.ExpBackoffRestartDelay,
	}
	if p.RestartDelay == 0 && p.ExpBackoff == 0 {
		p.ExpBackoff = DefaultBackoff
	}
	return p
}

// History is a slot's restart record: plain data, so a master upgrading
// itself can write it out and read it back.
type History struct {
	// Restarts counts every restart (PM2's restart_time, "↺" in pm2 ls).
	Restarts int `json:"restarts"`
	// Unstable counts unstable runs in a row (PM2's unstable_restarts).
	Unstable int `json:"unstable"`
	// PrevDelay is the last backoff delay (PM2's prev_restart_delay).
	PrevDelay time.Duration `json:"prev_delay_ns"`
	// Log holds the most recent restarts (at most maxRestartLog), oldest
	// first, for `launch describe`.
	Log []RestartRecord `json:"log,omitempty"`
	// ByReason counts every restart by its reason.
	ByReason map[string]int `json:"by_reason,omitempty"`
}

// Restart reasons, as `launch describe` and the metrics show them.
const (
	ReasonCrash         = "crash"          // the process exited on its own
	ReasonListenTimeout = "listen_timeout" // not ready within listen_timeout
	ReasonMemory        = "memory"         // over max_memory_restart
	ReasonReload        = "reload"         // replaced by a rolling reload
	ReasonRestart       = "restart"        // `launch restart`
)

// RestartRecord is one restart of a slot's worker.
type RestartRecord struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// PID is the process that exited or was replaced.
	PID int `json:"pid,omitempty"`
	// Exit is how it ended ("exit code 1", "killed by SIGKILL"), when it did.
	Exit string `json:"exit,omitempty"`
}

// maxRestartLog bounds History.Log.
const maxRestartLog = 20

// record counts a restart and keeps its record.
func (h *History) record(r RestartRecord) {
	h.Restarts++
	if h.ByReason == nil {
		h.ByReason = map[string]int{}
	}
	h.ByReason[r.Reason]++
	h.Log = append(h.Log, r)
	if len(h.Log) > maxRestartLog {
		h.Log = slices.Delete(h.Log, 0, len(h.Log)-maxRestartLog)
	}
}

// Action is what to do after an exit.
type Action int

// Actions.
const (
	// Restart after Decision.Delay.
	Restart Action = iota
	// Stop: the worker ends in the stopped state (autorestart: false, or
	// an exit code listed in stop_exit_codes).
	Stop
	// GiveUp: too many unstable restarts in a row; the worker is errored.
	GiveUp
)

// Decision is the policy's answer to one exit.
type Decision struct {
	Action Action
	Delay  time.Duration
	// Unstable says the run counted as unstable.
	Unstable bool
	// Reason is for the log ("exit code 1, up 12ms (unstable 3/16)").
	Reason string
}

// OnExit applies the restart rules to an exit of a run that lasted uptime
// and updates h. ready says whether the run ever became ready: a run that
// never did counts as unstable whatever its length (a failed start).
//
// From PM2's God.handleExit we keep: autorestart and stop_exit_codes end in
// stopped; a run shorter than min_uptime is unstable; unstable_restarts >=
// max_restarts gives up (errored); restart_delay is a fixed delay;
// exp_backoff_restart_delay grows ×1.5 to 15 s and resets after 30 s up.
//
// Where we differ, on purpose:
//   - PM2 counts an unstable run only while now − created_at <
//     min_uptime × max_restarts, so a crash loop that starts later is never
//     caught, and it never resets the count. We count unstable runs in a
//     row: a stable run resets the count, and an unstable loop is caught
//     whenever it happens.
//   - A run that never became ready (listen_timeout) is unstable.
//   - With no delay configured PM2 restarts at once; we back off
//     exponentially from 100 ms (design §5), so a slow crash loop costs at
//     most one start per 15 s instead of thousands a night.
//   - When both delays are set, PM2 lets exp_backoff win; so do we.
func (p Policy) OnExit(h *History, uptime time.Duration, st workers.ExitStatus, ready bool) Decision {
	desc := fmt.Sprintf("%s after %s", st, roundDur(uptime))
	if st.StartErr != "" {
		desc = st.String()
	}
	if !p.Autorestart {
		return Decision{Action: Stop, Reason: desc + "; autorestart is off"}
	}
	if !st.Lost && st.Signal == 0 && slices.Contains(p.StopExitCodes, st.Code) {
		return Decision{Action: Stop, Reason: fmt.Sprintf("%s; %d is in stop_exit_codes", desc, st.Code)}
	}
	unstable := uptime < p.MinUptime || !ready
	if unstable {
		h.Unstable++
	} else {
		h.Unstable = 0
	}
	if unstable && h.Unstable >= p.MaxRestarts {
		return Decision{Action: GiveUp, Unstable: true,
			Reason: fmt.Sprintf("%s; %d unstable runs in a row (max_restarts %d, min_uptime %s)", desc, h.Unstable, p.MaxRestarts, p.MinUptime)}
	}
	delay := p.nextDelay(h, uptime)
	h.record(RestartRecord{At: st.At, Reason: ReasonCrash, PID: st.PID, Exit: st.String()})
	reason := fmt.Sprintf("%s; restart in %s", desc, roundDur(delay))
	if unstable {
		reason += fmt.Sprintf(" (unstable %d/%d)", h.Unstable, p.MaxRestarts)
	}
	return Decision{Action: Restart, Delay: delay, Unstable: unstable, Reason: reason}
}

// nextDelay is the backoff step: a pure function of the history and the
// last run's length.
func (p Policy) nextDelay(h *History, uptime time.Duration) time.Duration {
	if p.ExpBackoff == 0 {
		return p.RestartDelay
	}
	if uptime >= backoffReset {
		h.PrevDelay = 0
	}
	var d time.Duration
	if h.PrevDelay == 0 {
		d = p.ExpBackoff
	} else {
		d = time.Duration(float64(h.PrevDelay) * backoffFactor).Truncate(time.Millisecond)
	}
	d = min(d, max(backoffCap, p.ExpBackoff))
	h.PrevDelay = d
	return d
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d
}
