package workers

import (
	"fmt"
	"sync"
	"time"
)

// State is where a worker is in its lifecycle (design §4). The names are
// PM2's, so `launch ls` reads like `pm2 ls`. Each constant's comment lists
// the states that may follow it; Machine.Set rejects every other move.
type State uint8

const (
	// None is the zero value: the worker has never been started.
	// Next: Launching.
	None State = iota
	// Launching: the process runs but is not ready yet.
	// Next: Online, Stopping, WaitingRestart, Stopped, Errored, Unknown.
	Launching
	// Online: the process is ready and serving.
	// Next: Stopping, WaitingRestart, Stopped, Errored, Unknown.
	Online
	// Stopping: the stop signal went to the process group; SIGKILL follows
	// after kill_timeout. Next: Stopped, Unknown.
	Stopping
	// Stopped: no process, and none will be started unless asked.
	// Next: Launching.
	Stopped
	// WaitingRestart: the process exited and a restart is scheduled after
	// a backoff delay. Next: Launching, Stopped.
	WaitingRestart
	// Errored: the restart policy gave up; only a person takes it out.
	// Next: Launching, Stopped.
	Errored
	// Unknown: the master lost track of the process (no exit status it
	// could see). The master escalates: it stops everything and exits
	// non-zero. Next: Stopped.
	Unknown
)

var stateNames = [...]string{
	None:           "none",
	Launching:      "launching",
	Online:         "online",
	Stopping:       "stopping",
	Stopped:        "stopped",
	WaitingRestart: "waiting-restart",
	Errored:        "errored",
	Unknown:        "unknown",
}

// String returns the state's name as `launch ls` shows it.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// MarshalText makes states read as their names in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// transitions is the one table of legal moves.
var transitions = map[State][]State{
	None:           {Launching},
	Launching:      {Online, Stopping, WaitingRestart, Stopped, Errored, Unknown},
	Online:         {Stopping, WaitingRestart, Stopped, Errored, Unknown},
	Stopping:       {Stopped, Unknown},
	Stopped:        {Launching},
	WaitingRestart: {Launching, Stopped},
	Errored:        {Launching, Stopped},
	Unknown:        {Stopped},
}

// CanMove reports whether from → to is a legal transition.
func CanMove(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Transition is one state change, as logged and emitted.
type Transition struct {
	Worker string // "web.0"
	From   State
	To     State
	Reason string
	At     time.Time
}

// String formats a transition for the master's log.
func (t Transition) String() string {
	if t.Reason == "" {
		return fmt.Sprintf("%s: %s → %s", t.Worker, t.From, t.To)
	}
	return fmt.Sprintf("%s: %s → %s (%s)", t.Worker, t.From, t.To, t.Reason)
}

// Machine holds one worker's state. Every change goes through Set, which
// rejects illegal moves, counts entries into each state and reports the
// transition to OnChange. The zero Machine is in None and reports nowhere.
//
// Set is meant to be called by the worker's one owner goroutine; State and
// Counts may be read from any goroutine.
type Machine struct {
	// Name identifies the worker in transitions ("web.0").
	Name string
	// OnChange, if set, is called synchronously after every transition.
	OnChange func(Transition)
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu     sync.Mutex
	state  State
	since  time.Time
	counts [len(stateNames)]int
}

// State returns the current state and when it was entered.
func (m *Machine) State() (State, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, m.since
}

// Count returns how many times the machine has entered s.
func (m *Machine) Count(s State) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[s]
}

// Set moves the machine to `to`. An illegal move returns an error and
// changes nothing; it is a bug in the caller, never a user error.
func (m *Machine) Set(to State, reason string) error {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	m.mu.Lock()
	from := m.state
	if !CanMove(from, to) {
		m.mu.Unlock()
		return fmt.Errorf("%s: illegal state change %s → %s (%s)", m.Name, from, to, reason)
	}
	t := Transition{Worker: m.Name, From: from, To: to, Reason: reason, At: now()}
	m.state, m.since = to, t.At
	m.counts[to]++
	m.mu.Unlock()
	if m.OnChange != nil {
		m.OnChange(t)
	}
	return nil
}
