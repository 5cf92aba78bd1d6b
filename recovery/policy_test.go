package recovery

import (
	"syscall"
	"testing"
	"time"

	"github.com/launch-go/launch/workers"
)

func TestPolicy(t *testing.T) {
	ms := time.Millisecond
	crash := workers.ExitStatus{Code: 1}
	clean := workers.ExitStatus{Code: 0}
	killed := workers.ExitStatus{Code: -1, Signal: syscall.SIGKILL}
	pm2 := Policy{Autorestart: true, MaxRestarts: 16, MinUptime: time.Second, ExpBackoff: DefaultBackoff}

	type exit struct {
		uptime time.Duration
		st     workers.ExitStatus
		ready  bool
	}
	cases := []struct {
		name   string
		p      Policy
		exits  []exit
		action Action
		delays []time.Duration // delay after each exit (Restart only)
	}{
		{"autorestart off stops", Policy{Autorestart: false, MaxRestarts: 16, MinUptime: time.Second},
			[]exit{{5 * time.Second, crash, true}}, Stop, nil},
		{"stop_exit_codes stop", Policy{Autorestart: true, StopExitCodes: []int{0, 3}, MaxRestarts: 16, MinUptime: time.Second},
			[]exit{{5 * time.Second, clean, true}}, Stop, nil},
		{"a signal is not an exit code", Policy{Autorestart: true, StopExitCodes: []int{0}, MaxRestarts: 16, MinUptime: time.Second, RestartDelay: 50 * ms},
			[]exit{{5 * time.Second, killed, true}}, Restart, []time.Duration{50 * ms}},
		{"fixed restart_delay", Policy{Autorestart: true, MaxRestarts: 16, MinUptime: time.Second, RestartDelay: 250 * ms},
			[]exit{{5 * time.Second, crash, true}, {5 * time.Second, crash, true}}, Restart, []time.Duration{250 * ms, 250 * ms}},
		{"default backoff grows x1.5", pm2,
			[]exit{{5 * time.Second, crash, true}, {5 * time.Second, crash, true}, {5 * time.Second, crash, true}, {5 * time.Second, crash, true}},
			Restart, []time.Duration{100 * ms, 150 * ms, 225 * ms, 337 * ms}},
		{"backoff resets after 30s up", pm2,
			[]exit{{5 * time.Second, crash, true}, {5 * time.Second, crash, true}, {31 * time.Second, crash, true}},
			Restart, []time.Duration{100 * ms, 150 * ms, 100 * ms}},
		{"exp_backoff caps at 15s", Policy{Autorestart: true, MaxRestarts: 100, MinUptime: time.Second, ExpBackoff: 10 * time.Second},
			[]exit{{5 * time.Second, crash, true}, {5 * time.Second, crash, true}, {5 * time.Second, crash, true}},
			Restart, []time.Duration{10 * time.Second, 15 * time.Second, 15 * time.Second}},
		{"exp_backoff wins over restart_delay (as in PM2)", Policy{Autorestart: true, MaxRestarts: 16, MinUptime: time.Second, RestartDelay: time.Second, ExpBackoff: 200 * ms},
			[]exit{{5 * time.Second, crash, true}}, Restart, []time.Duration{200 * ms}},
		{"unstable runs in a row give up at max_restarts", Policy{Autorestart: true, MaxRestarts: 3, MinUptime: time.Second, RestartDelay: 10 * ms},
			[]exit{{10 * ms, crash, true}, {10 * ms, crash, true}, {10 * ms, crash, true}}, GiveUp, []time.Duration{10 * ms, 10 * ms}},
		{"a stable run resets the unstable count", Policy{Autorestart: true, MaxRestarts: 3, MinUptime: time.Second, RestartDelay: 10 * ms},
			[]exit{{10 * ms, crash, true}, {10 * ms, crash, true}, {2 * time.Second, crash, true}, {10 * ms, crash, true}, {10 * ms, crash, true}},
			Restart, []time.Duration{10 * ms, 10 * ms, 10 * ms, 10 * ms, 10 * ms}},
		{"a run that never became ready is unstable however long", Policy{Autorestart: true, MaxRestarts: 2, MinUptime: time.Second, RestartDelay: 10 * ms},
			[]exit{{5 * time.Second, crash, false}, {5 * time.Second, crash, false}}, GiveUp, []time.Duration{10 * ms}},
		{"max_restarts 0 gives up at the first unstable exit", Policy{Autorestart: true, MaxRestarts: 0, MinUptime: time.Second},
			[]exit{{10 * ms, crash, true}}, GiveUp, nil},
		{"max_restarts 0 still restarts after a stable run", Policy{Autorestart: true, MaxRestarts: 0, MinUptime: time.Second, RestartDelay: ms},
			[]exit{{2 * time.Second, crash, true}}, Restart, []time.Duration{ms}},
		{"slow crash loop (PM2 #1496) backs off to 15s, never errored", pm2,
			repeat(exit{2 * time.Second, crash, true}, 20), Restart, nil},
	}
	for _, c := range cases {
		var h History
		var d Decision
		for i, e := range c.exits {
			d = c.p.OnExit(&h, e.uptime, e.st, e.ready)
			if c.delays != nil && i < len(c.delays) {
				if d.Action != Restart || d.Delay != c.delays[i] {
					t.Errorf("%s: exit %d: %v after %s, want restart after %s (%s)", c.name, i, d.Action, d.Delay, c.delays[i], d.Reason)
				}
			}
		}
		if d.Action != c.action {
			t.Errorf("%s: last decision %v, want %v (%s)", c.name, d.Action, c.action, d.Reason)
		}
		if c.name == "slow crash loop (PM2 #1496) backs off to 15s, never errored" && d.Delay != 15*time.Second {
			t.Errorf("%s: delay after 20 crashes = %s, want the 15s cap", c.name, d.Delay)
		}
	}
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestTimeToErrored: a crash-at-start app under the defaults reaches
// errored after max_restarts starts; the total backoff it waits is the sum
// of the delays (documented in the README).
func TestTimeToErrored(t *testing.T) {
	p := Policy{Autorestart: true, MaxRestarts: 16, MinUptime: time.Second, ExpBackoff: DefaultBackoff}
	var h History
	var total time.Duration
	starts := 1
	for {
		d := p.OnExit(&h, 5*time.Millisecond, workers.ExitStatus{Code: 1}, false)
		if d.Action == GiveUp {
			break
		}
		total += d.Delay
		starts++
		if starts > 100 {
			t.Fatal("never gave up")
		}
	}
	if starts != 16 {
		t.Errorf("starts before errored = %d, want 16 (PM2's max_restarts)", starts)
	}
	if total < 60*time.Second || total > 75*time.Second {
		t.Errorf("total backoff before errored = %s, want about 69s", total)
	}
}

func TestFakeClock(t *testing.T) {
	c := NewFakeClock(time.Unix(0, 0))
	var got []int
	c.AfterFunc(2*time.Second, func() { got = append(got, 2) })
	c.AfterFunc(time.Second, func() { got = append(got, 1) })
	stopped := c.AfterFunc(1500*time.Millisecond, func() { got = append(got, 99) })
	if !stopped.Stop() {
		t.Error("Stop of a pending timer = false")
	}
	c.Advance(1500 * time.Millisecond)
	if len(got) != 1 || got[0] != 1 {
		t.Errorf("after 1.5s: %v", got)
	}
	c.Advance(time.Second)
	if len(got) != 2 || got[1] != 2 || c.Pending() != 0 {
		t.Errorf("after 2.5s: %v, %d pending", got, c.Pending())
	}
}
