// Command launch is a cluster-mode process launcher: it binds an app's
// listening sockets once, starts one worker per CPU that inherit them the
// systemd way, restarts workers that crash and replaces them without
// dropping connections. See README.md.
package main

import (
	"os"

	"github.com/launch-go/launch/workers"
)

func main() {
	// Workers start through this same binary (the LISTEN_PID trampoline);
	// it must run before anything else, and never returns.
	if len(os.Args) > 1 && os.Args[1] == workers.TrampolineArg {
		workers.Trampoline(os.Args[2:])
	}
	os.Exit(run(os.Args[1:]))
}
