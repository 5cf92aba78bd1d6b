package workers

import (
	"os"
	"testing"

	"github.com/launch-go/launch/internal/helperproc"
	"go.uber.org/goleak"
)

// The test binary impersonates the programs the tests start (os/exec's
// pattern): the trampoline, and helpers chosen by LAUNCH_TEST_HELPER.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == TrampolineArg {
		Trampoline(os.Args[2:])
	}
	helperproc.Run()
	code := m.Run()
	if testReaper != nil {
		testSpawner.Close()
		testReaper.Stop()
	}
	// lumberjack never stops a Logger's mill goroutine; FileLog keeps one
	// Logger per file for the process's life (see FileLog).
	helperproc.Exit(code, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

var (
	testReaper  *Reaper
	testSpawner *Spawner
)

// spawner returns the package's one spawner for tests.
func spawner(t testing.TB) *Spawner {
	t.Helper()
	if testSpawner == nil {
		r, err := StartReaper()
		if err != nil {
			t.Fatal(err)
		}
		dir, err := os.MkdirTemp("", "lw-")
		if err != nil {
			t.Fatal(err)
		}
		testReaper, testSpawner = r, NewSpawner(r, os.Args[0], dir)
	}
	return testSpawner
}

// helperSpec starts this test binary as helper h.
func helperSpec(name, h string, env ...string) Spec {
	return Spec{
		Name: name,
		Path: os.Args[0],
		Args: helperproc.Args(),
		Env:  append(append(os.Environ(), helperproc.Env+"="+h), env...),
	}
}
