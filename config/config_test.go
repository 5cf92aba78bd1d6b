package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// parseIn parses src as the file name in dir.
func parseIn(t *testing.T, dir, name, src string, opts Options) (*File, error) {
	t.Helper()
	return Parse(filepath.Join(dir, name), []byte(src), opts)
}

// mustParse parses src as app.yaml in a fresh directory and fails the test
// (naming the case) on error.
func mustParse(t *testing.T, name, src string) (*File, string) {
	t.Helper()
	dir := t.TempDir()
	f, err := parseIn(t, dir, "app.yaml", src, Options{CPUs: 4})
	if err != nil {
		t.Fatalf("%s: unexpected error:\n%v\nfile:\n%s", name, err, src)
	}
	return f, dir
}

func TestDefaults(t *testing.T) {
	f, dir := mustParse(t, "defaults", "apps:\n  - script: ./bin/server\n")
	if len(f.Apps) != 1 {
		t.Fatalf("defaults: got %d apps, want 1", len(f.Apps))
	}
	want := &App{
		Name:          "server",
		Command:       filepath.Join(dir, "bin/server"),
		Args:          []string{},
		Script:        "./bin/server",
		Dir:           dir,
		Instances:     1,
		ExecMode:      ExecCluster,
		Env:           map[string]string{},
		Autorestart:   true,
		MaxRestarts:   16,
		MinUptime:     time.Second,
		KillTimeout:   1600 * time.Millisecond,
		ListenTimeout: 3000 * time.Millisecond,
		Ready:         Ready{Kind: ReadyDelay, Delay: time.Second},
		Balance:       BalanceShared,
		StopSignal:    syscall.SIGTERM,
		LogMaxSize:    10 << 20,
		LogMaxFiles:   5,
		Line:          2,
	}
	if got := f.Apps[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *got, *want)
	}
	if len(f.Warnings) != 0 {
		t.Errorf("defaults: unexpected warnings %q", f.Warnings)
	}
	if f.Path != filepath.Join(dir, "app.yaml") {
		t.Errorf("defaults: Path = %q", f.Path)
	}
	if msg := eq(f.Metrics, "") + eqv(f.ShutdownDelay, time.Duration(0)) + eqv(f.SampleInterval, time.Second); msg != "" {
		t.Errorf("defaults: top level: %s", msg)
	}
}

// TestKeys checks the parsing of every implemented key. Each case is the
// body of one app (under apps:), and check returns what is wrong, or "".
func TestKeys(t *testing.T) {
	tests := []struct {
		name  string
		app   string
		check func(a *App, dir string) string
	}{
		{"name given", "name: web\nscript: x", func(a *App, _ string) string { return eq(a.Name, "web") }},
		{"name numeric", "name: 123\nscript: x", func(a *App, _ string) string { return eq(a.Name, "123") }},
		{"name default strips extension", "script: ./srv/api.py", func(a *App, _ string) string { return eq(a.Name, "api") }},
		{"name default dotfile", "script: ./.hidden", func(a *App, _ string) string { return eq(a.Name, ".hidden") }},
		{"script bare name stays for PATH", "script: python3", func(a *App, _ string) string {
			return eq(a.Command, "python3") + eqs(a.Args, nil)
		}},
		{"script with spaces is one path", "script: ./my server", func(a *App, dir string) string {
			return eq(a.Command, filepath.Join(dir, "my server")) + eqs(a.Args, nil)
		}},
		{"script absolute", "script: /usr/bin/env", func(a *App, _ string) string { return eq(a.Command, "/usr/bin/env") }},
		{"script list", "script: [./bin/server, --port, 8080]\nargs: --verbose", func(a *App, dir string) string {
			return eq(a.Command, filepath.Join(dir, "bin/server")) + eqs(a.Args, []string{"--port", "8080", "--verbose"}) + eq(a.Script, "./bin/server")
		}},
		{"args string split like a shell", `script: x
args: "a 'b c' \"d e\" f\\ g"`, func(a *App, _ string) string {
			return eqs(a.Args, []string{"a", "b c", "d e", "f g"})
		}},
		{"args list with numbers", "script: x\nargs: [--port, 8080, 1.5]", func(a *App, _ string) string {
			return eqs(a.Args, []string{"--port", "8080", "1.5"})
		}},
		{"interpreter by extension", "script: app.js", func(a *App, _ string) string {
			return eq(a.Command, "node") + eqs(a.Args, []string{"app.js"}) + eq(a.Interpreter, "node")
		}},
		{"interpreter given", "script: ./app.js\ninterpreter: /opt/node/bin/node", func(a *App, dir string) string {
			return eq(a.Command, "/opt/node/bin/node") + eqs(a.Args, []string{filepath.Join(dir, "app.js")})
		}},
		{"interpreter relative path", "script: app.py\ninterpreter: ./venv/bin/python", func(a *App, dir string) string {
			return eq(a.Command, filepath.Join(dir, "venv/bin/python"))
		}},
		{"interpreter none", "script: ./app.js\ninterpreter: none\nargs: [a]", func(a *App, dir string) string {
			return eq(a.Command, filepath.Join(dir, "app.js")) + eqs(a.Args, []string{"a"}) + eq(a.Interpreter, "")
		}},
		{"exec_interpreter alias", "script: x.txt\nexec_interpreter: bash", func(a *App, _ string) string {
			return eq(a.Command, "bash") + eqs(a.Args, []string{"x.txt"})
		}},
		{"interpreter_args and args order", "script: [app.py, sub]\ninterpreter_args: -u -X dev\nargs: [--a]", func(a *App, _ string) string {
			return eq(a.Command, "python3") + eqs(a.Args, []string{"-u", "-X", "dev", "app.py", "sub", "--a"})
		}},
		{"node_args alias as list", "script: app.js\nnode_args: [--max-old-space-size=512]", func(a *App, _ string) string {
			return eqs(a.Args, []string{"--max-old-space-size=512", "app.js"})
		}},
		{"cwd relative", "script: ./run\ncwd: sub/dir", func(a *App, dir string) string {
			return eq(a.Dir, filepath.Join(dir, "sub/dir")) + eq(a.Command, filepath.Join(dir, "sub/dir/run"))
		}},
		{"cwd absolute", "script: x\ncwd: /tmp", func(a *App, _ string) string { return eq(a.Dir, "/tmp") }},
		{"instances number", "script: x\ninstances: 4", func(a *App, _ string) string {
			return eqv(a.Instances, 4) + eqv(a.InstancesSet, true)
		}},
		{"instances max", "script: x\ninstances: max", func(a *App, _ string) string { return eqv(a.Instances, 0) + eqv(a.InstancesSet, true) }},
		{"instances MAX any case", `script: x
instances: "Max"`, func(a *App, _ string) string { return eqv(a.Instances, 0) }},
		{"instances zero", "script: x\ninstances: 0", func(a *App, _ string) string { return eqv(a.Instances, 0) }},
		{"instances negative", "script: x\ninstances: -1", func(a *App, _ string) string { return eqv(a.Instances, -1) }},
		{"instances numeric string", `script: x
instances: "3"`, func(a *App, _ string) string { return eqv(a.Instances, 3) }},
		{"exec_mode fork", "script: x\nexec_mode: fork", func(a *App, _ string) string { return eqv(a.ExecMode, ExecFork) }},
		{"exec_mode fork_mode", "script: x\nexec_mode: fork_mode", func(a *App, _ string) string { return eqv(a.ExecMode, ExecFork) }},
		{"exec_mode cluster_mode", "script: x\nexec_mode: cluster_mode", func(a *App, _ string) string { return eqv(a.ExecMode, ExecCluster) }},
		{"env scalars", "script: x\nenv: {S: hi, N: 8080, F: 1.50, B: true, Z: null, E: ''}", func(a *App, _ string) string {
			return eqv(a.Env, map[string]string{"S": "hi", "N": "8080", "F": "1.50", "B": "true", "Z": "", "E": ""})
		}},
		{"env section not selected", "script: x\nenv: {A: base}\nenv_production: {A: prod}", func(a *App, _ string) string {
			return eqv(a.Env, map[string]string{"A": "base"})
		}},
		{"autorestart false", "script: x\nautorestart: false", func(a *App, _ string) string { return eqv(a.Autorestart, false) }},
		{"stop_exit_codes one", "script: x\nstop_exit_codes: 0", func(a *App, _ string) string { return eqv(a.StopExitCodes, []int{0}) }},
		{"stop_exit_codes list", "script: x\nstop_exit_codes: [0, 3, 255]", func(a *App, _ string) string {
			return eqv(a.StopExitCodes, []int{0, 3, 255})
		}},
		{"max_restarts", "script: x\nmax_restarts: 0", func(a *App, _ string) string { return eqv(a.MaxRestarts, 0) }},
		{"start_nice", "script: x\nstart_nice: 10", func(a *App, _ string) string { return eqv(a.StartNice, 10) }},
		{"min_uptime ms", "script: x\nmin_uptime: 5000", func(a *App, _ string) string { return eqv(a.MinUptime, 5*time.Second) }},
		{"min_uptime string", "script: x\nmin_uptime: 2m", func(a *App, _ string) string { return eqv(a.MinUptime, 2*time.Minute) }},
		{"restart_delay", "script: x\nrestart_delay: 250ms", func(a *App, _ string) string { return eqv(a.RestartDelay, 250*time.Millisecond) }},
		{"exp_backoff_restart_delay", "script: x\nexp_backoff_restart_delay: 100", func(a *App, _ string) string {
			return eqv(a.ExpBackoffRestartDelay, 100*time.Millisecond)
		}},
		{"kill_timeout", `script: x
kill_timeout: "3000"`, func(a *App, _ string) string { return eqv(a.KillTimeout, 3*time.Second) }},
		{"kill_timeout zero", "script: x\nkill_timeout: 0", func(a *App, _ string) string { return eqv(a.KillTimeout, time.Duration(0)) }},
		{"listen_timeout", "script: x\nlisten_timeout: 1.5s", func(a *App, _ string) string { return eqv(a.ListenTimeout, 1500*time.Millisecond) }},
		{"max_memory_restart", "script: x\nmax_memory_restart: 512M", func(a *App, _ string) string { return eqv(a.MaxMemoryRestart, int64(512<<20)) }},
		{"max_memory_restart bytes", "script: x\nmax_memory_restart: 1048576", func(a *App, _ string) string { return eqv(a.MaxMemoryRestart, int64(1<<20)) }},
		{"wait_ready node gives ipc", "script: app.js\nwait_ready: true", func(a *App, _ string) string {
			return eqv(a.WaitReady, true) + eqv(a.Ready, Ready{Kind: ReadyIPC})
		}},
		{"wait_ready node interpreter gives ipc", "script: app\ninterpreter: /usr/local/bin/node\nwait_ready: true", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyIPC})
		}},
		{"wait_ready other gives notify", "script: ./server\nwait_ready: true", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyNotify})
		}},
		{"ready default follows min_uptime", "script: x\nmin_uptime: 300", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyDelay, Delay: 300 * time.Millisecond})
		}},
		{"ready default is at most half of listen_timeout", "script: x\nlisten_timeout: 500", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyDelay, Delay: 250 * time.Millisecond})
		}},
		{"ready notify", "script: x\nready: notify", func(a *App, _ string) string { return eqv(a.Ready, Ready{Kind: ReadyNotify}) }},
		{"ready ipc for non-node", "script: ./x\nready: ipc", func(a *App, _ string) string { return eqv(a.Ready, Ready{Kind: ReadyIPC}) }},
		{"ready delay", "script: x\nready: delay", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyDelay, Delay: time.Second})
		}},
		{"ready delay duration", "script: x\nready: delay:2s", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyDelay, Delay: 2 * time.Second})
		}},
		{"ready wins over wait_ready", "script: app.js\nwait_ready: true\nready: notify", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyNotify})
		}},
		{"stop_signal name", "script: x\nstop_signal: SIGINT", func(a *App, _ string) string { return eqv(a.StopSignal, syscall.SIGINT) }},
		{"stop_signal short lower", "script: x\nstop_signal: quit", func(a *App, _ string) string { return eqv(a.StopSignal, syscall.SIGQUIT) }},
		{"stop_signal hex", "script: x\nstop_signal: 0x9", func(a *App, _ string) string { return eqv(a.StopSignal, syscall.SIGKILL) }},
		{"null is not given", "script: x\nname: ~\ninstances: ~\nautorestart: null\nenv: ~\nlisten: ~\nkill_timeout: ~", func(a *App, _ string) string {
			return eq(a.Name, "x") + eqv(a.Instances, 1) + eqv(a.InstancesSet, false) + eqv(a.Autorestart, true) + eqv(a.KillTimeout, 1600*time.Millisecond)
		}},
		{"stop_signal number", "script: x\nstop_signal: 10", func(a *App, _ string) string { return eqv(a.StopSignal, syscall.SIGUSR1) }},
		{"uid root by name", "script: x\nuid: root", func(a *App, _ string) string {
			if a.Credential == nil {
				return "no credential"
			}
			return eqv(a.Credential.Uid, uint32(0)) + eqv(a.Credential.Gid, uint32(0)) + eq(a.User, "root")
		}},
		{"uid and gid by number", "script: x\nuid: 0\ngid: 0", func(a *App, _ string) string {
			if a.Credential == nil {
				return "no credential"
			}
			return eqv(a.Credential.Uid, uint32(0)) + eqv(a.Credential.Gid, uint32(0)) + eq(a.User, "0:0")
		}},
		{"uid number without passwd entry, with gid", "script: x\nuid: 54321\ngid: 54321", func(a *App, _ string) string {
			if a.Credential == nil {
				return "no credential"
			}
			return eqv(a.Credential.Uid, uint32(54321)) + eqv(a.Credential.Gid, uint32(54321))
		}},
		{"gid by name only", "script: x\ngid: root", func(a *App, _ string) string {
			if a.Credential == nil {
				return "no credential"
			}
			return eqv(a.Credential.Uid, uint32(os.Getuid())) + eqv(a.Credential.Gid, uint32(0))
		}},
		{"user alias of uid", "script: x\nuser: root", func(a *App, _ string) string {
			if a.Credential == nil {
				return "no credential"
			}
			return eqv(a.Credential.Uid, uint32(0))
		}},
		{"listen one string", "name: web\nscript: x\nlisten: 127.0.0.1:8080", func(a *App, _ string) string {
			return eqv(a.Listen, []Listen{{Network: TCP, Address: "127.0.0.1:8080", Name: "web", Line: 4}})
		}},
		{"listen forms", `name: web
script: x
listen:
  - ":8080"
  - 9090
  - "9091"
  - "[::1]:80"
  - localhost:81
  - 0.0.0.0:82
  - unix:web.sock
  - {address: "unix:/tmp/x.sock", name: admin, mode: "0600"}
  - {address: 127.0.0.1:83, name: metrics}
`, func(a *App, dir string) string {
			return eqv(a.Listen, []Listen{
				{Network: TCP, Address: ":8080", Name: "web", Line: 5},
				{Network: TCP, Address: ":9090", Name: "web", Line: 6},
				{Network: TCP, Address: ":9091", Name: "web", Line: 7},
				{Network: TCP, Address: "[::1]:80", Name: "web", Line: 8},
				{Network: TCP, Address: "localhost:81", Name: "web", Line: 9},
				{Network: TCP, Address: "0.0.0.0:82", Name: "web", Line: 10},
				{Network: Unix, Address: filepath.Join(dir, "web.sock"), Name: "web", Mode: 0o660, Line: 11},
				{Network: Unix, Address: "/tmp/x.sock", Name: "admin", Mode: 0o600, Line: 12},
				{Network: TCP, Address: "127.0.0.1:83", Name: "metrics", Line: 13},
			})
		}},
		{"listen mode as YAML int", "script: x\nlisten: [{address: 'unix:/tmp/y.sock', mode: 0640}]", func(a *App, _ string) string {
			return eqv(a.Listen[0].Mode, os.FileMode(0o640))
		}},
		{"listen port 0 twice is fine", "script: x\nlisten: [':0', '127.0.0.1:0']", func(a *App, _ string) string {
			return eqv(len(a.Listen), 2)
		}},
		{"listen normalizes port", "script: x\nlisten: ':08080'", func(a *App, _ string) string {
			return eq(a.Listen[0].Address, ":8080")
		}},
		{"listen null", "script: x\nlisten: null", func(a *App, _ string) string { return eqv(len(a.Listen), 0) }},
		{"fork without listen", "script: x\nexec_mode: fork\nlisten: []", func(a *App, _ string) string { return eqv(a.ExecMode, ExecFork) }},
		{"balance shared", "script: x\nbalance: shared", func(a *App, _ string) string { return eqv(a.Balance, BalanceShared) }},
		{"balance reuseport", "script: x\nbalance: reuseport\nlisten: 80", func(a *App, _ string) string {
			return eqv(a.Balance, BalanceReusePort) + eqv(a.Proxy, (*Proxy)(nil))
		}},

		// Logs.
		{"out_file relative to the app file", "script: x\ncwd: sub\nout_file: logs/out.log", func(a *App, dir string) string {
			return eq(a.OutFile, filepath.Join(dir, "logs/out.log")) + eq(a.ErrorFile, "") + eq(a.LogFile, "")
		}},
		{"out_file absolute cleaned", "script: x\nout_file: /var/log/../log/web.log", func(a *App, _ string) string {
			return eq(a.OutFile, "/var/log/web.log")
		}},
		{"out alias", "script: x\nout: o.log", func(a *App, dir string) string { return eq(a.OutFile, filepath.Join(dir, "o.log")) }},
		{"output alias", "script: x\noutput: o.log", func(a *App, dir string) string { return eq(a.OutFile, filepath.Join(dir, "o.log")) }},
		{"out_log alias", "script: x\nout_log: o.log", func(a *App, dir string) string { return eq(a.OutFile, filepath.Join(dir, "o.log")) }},
		{"error_file", "script: x\nerror_file: ./e.log", func(a *App, dir string) string { return eq(a.ErrorFile, filepath.Join(dir, "e.log")) }},
		{"error alias", "script: x\nerror: e.log", func(a *App, dir string) string { return eq(a.ErrorFile, filepath.Join(dir, "e.log")) }},
		{"err alias", "script: x\nerr: e.log", func(a *App, dir string) string { return eq(a.ErrorFile, filepath.Join(dir, "e.log")) }},
		{"err_file alias", "script: x\nerr_file: e.log", func(a *App, dir string) string { return eq(a.ErrorFile, filepath.Join(dir, "e.log")) }},
		{"err_log alias", "script: x\nerr_log: e.log", func(a *App, dir string) string { return eq(a.ErrorFile, filepath.Join(dir, "e.log")) }},
		{"log_file", "script: x\nlog_file: all.log", func(a *App, dir string) string { return eq(a.LogFile, filepath.Join(dir, "all.log")) }},
		{"log alias", "script: x\nlog: all.log", func(a *App, dir string) string { return eq(a.LogFile, filepath.Join(dir, "all.log")) }},
		{"out and error to one file (PM2 allows it)", "script: x\nout_file: a.log\nerror_file: a.log", func(a *App, dir string) string {
			return eq(a.OutFile, filepath.Join(dir, "a.log")) + eq(a.ErrorFile, filepath.Join(dir, "a.log"))
		}},
		{"/dev/null and NULL mean no file", "script: x\nout_file: /dev/null\nerror_file: NULL\nlog_file: false", func(a *App, _ string) string {
			return eq(a.OutFile, "") + eq(a.ErrorFile, "") + eq(a.LogFile, "")
		}},
		{"log_file true is warned and ignored", "script: x\nlog_file: true", func(a *App, _ string) string { return eq(a.LogFile, "") }},
		{"log_date_format", "script: x\nlog_date_format: YYYY-MM-DD HH:mm:ss Z", func(a *App, _ string) string {
			return eq(a.LogDateFormat, "2006-01-02 15:04:05 -07:00")
		}},
		{"log_date_format ISO with T", "script: x\nlog_date_format: YYYY-MM-DDTHH:mm:ss.SSSZZ", func(a *App, _ string) string {
			return eq(a.LogDateFormat, "2006-01-02T15:04:05.000-0700")
		}},
		{"log_max_size and log_max_files", "script: x\nlog_max_size: 1G\nlog_max_files: 0", func(a *App, _ string) string {
			return eqv(a.LogMaxSize, int64(1<<30)) + eqv(a.LogMaxFiles, 0)
		}},
		{"log_max_size 0 never rotates", "script: x\nlog_max_size: 0\nlog_max_files: 30", func(a *App, _ string) string {
			return eqv(a.LogMaxSize, int64(0)) + eqv(a.LogMaxFiles, 30)
		}},
		{"log_max_size bytes", "script: x\nlog_max_size: 2048", func(a *App, _ string) string { return eqv(a.LogMaxSize, int64(2048)) }},

		// Proxy mode.
		{"proxy defaults", "script: x\nbalance: proxy\nlisten: 8080", func(a *App, _ string) string {
			return eqv(a.Balance, BalanceProxy) + eqv(a.Ready, Ready{Kind: ReadyListen}) + eqv(a.Proxy, &Proxy{
				Protocol: "http", To: "tcp", Strategy: "least", MaxConns: 10000,
				ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 90 * time.Second,
				MaxHeaderBytes: 64 << 10,
			})
		}},
		{"proxy everything", `script: x
balance: proxy
listen: ["127.0.0.1:8080", "unix:/tmp/p.sock"]
protocol: http
proxy_to: unix
sticky: ip
health_check: {path: "/healthz?deep=1", interval: 10s, timeout: 500}
ready: http:/ready
proxy:
  strategy: round_robin
  max_conns: 50
  read_timeout: 5s
  write_timeout: 0
  idle_timeout: 2m
  max_header_size: 1M`, func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyHTTP, Path: "/ready"}) + eqv(a.Proxy, &Proxy{
				Protocol: "http", To: "unix", Strategy: "round_robin", Sticky: true, MaxConns: 50,
				ReadTimeout: 5 * time.Second, WriteTimeout: 0, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 1 << 20,
				HealthPath: "/healthz?deep=1", HealthInterval: 10 * time.Second, HealthTimeout: 500 * time.Millisecond,
			})
		}},
		{"proxy tcp", "script: x\nbalance: proxy\nlisten: 5432\nprotocol: tcp\nsticky: none\nhealth_check: false", func(a *App, _ string) string {
			return eq(a.Proxy.Protocol, "tcp") + eqv(a.Proxy.Sticky, false) + eq(a.Proxy.HealthPath, "") + eqv(a.Ready, Ready{Kind: ReadyListen})
		}},
		{"proxy health_check path only", "script: x\nbalance: proxy\nlisten: 80\nhealth_check: /healthz", func(a *App, _ string) string {
			return eq(a.Proxy.HealthPath, "/healthz") + eqv(a.Proxy.HealthInterval, 5*time.Second) + eqv(a.Proxy.HealthTimeout, 2*time.Second)
		}},
		{"proxy sticky false", "script: x\nbalance: proxy\nlisten: 80\nsticky: false", func(a *App, _ string) string {
			return eqv(a.Proxy.Sticky, false)
		}},
		{"proxy null sub-keys are not given", "script: x\nbalance: proxy\nlisten: 80\nproxy: {strategy: ~, max_conns: null}", func(a *App, _ string) string {
			return eq(a.Proxy.Strategy, "least") + eqv(a.Proxy.MaxConns, 10000)
		}},
		{"proxy ready notify stays allowed", "script: x\nbalance: proxy\nlisten: 80\nready: notify", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyNotify})
		}},
		{"proxy ready delay stays allowed", "script: x\nbalance: proxy\nlisten: 80\nready: delay:200ms", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyDelay, Delay: 200 * time.Millisecond})
		}},
		{"proxy ready listen", "script: x\nbalance: proxy\nlisten: 80\nprotocol: tcp\nready: listen", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyListen})
		}},
		{"proxy wait_ready keeps message readiness", "script: app.js\nbalance: proxy\nlisten: 80\nwait_ready: true", func(a *App, _ string) string {
			return eqv(a.Ready, Ready{Kind: ReadyIPC})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "apps:\n  - " + strings.ReplaceAll(tt.app, "\n", "\n    ") + "\n"
			f, dir := mustParse(t, tt.name, src)
			if msg := tt.check(f.Apps[0], dir); msg != "" {
				t.Errorf("%s: %s\nfile:\n%s", tt.name, msg, src)
			}
		})
	}
}

// eq, eqs and eqv return "" when got equals want, else a description.
func eq(got, want string) string {
	if got != want {
		return "got " + quote(got) + ", want " + quote(want) + "; "
	}
	return ""
}

func eqs(got, want []string) string {
	if len(got) == 0 && len(want) == 0 {
		return ""
	}
	if !reflect.DeepEqual(got, want) {
		return "got " + strings.Join(quoteAll(got), " ") + ", want " + strings.Join(quoteAll(want), " ") + "; "
	}
	return ""
}

func eqv(got, want any) string {
	if !reflect.DeepEqual(got, want) {
		return formatAny(got) + " != " + formatAny(want) + "; "
	}
	return ""
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = quote(s)
	}
	return out
}

func formatAny(v any) string { return fmt.Sprintf("%+v", v) }

func TestMergeKeysAndAnchors(t *testing.T) {
	src := `x-defaults: &defaults
  instances: 3
  env: {A: from-defaults, B: b}
  kill_timeout: 5s
apps:
  - <<: *defaults
    name: web
    script: ./web
    env: {A: mine}
  - <<: [*defaults]
    name: worker
    script: ./worker
    instances: 1
`
	f, _ := mustParse(t, "merge keys", src)
	web, worker := f.Apps[0], f.Apps[1]
	if msg := eqv(web.Instances, 3) + eqv(web.KillTimeout, 5*time.Second) + eqv(web.Env, map[string]string{"A": "mine"}); msg != "" {
		t.Errorf("merge keys: web: %s", msg)
	}
	if msg := eqv(worker.Instances, 1) + eqv(worker.Env, map[string]string{"A": "from-defaults", "B": "b"}); msg != "" {
		t.Errorf("merge keys: worker: %s", msg)
	}
}

func TestFileShapes(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		names []string
	}{
		{"apps list", "apps:\n  - script: a\n  - script: b\n", []string{"a", "b"}},
		{"top-level list", "- script: a\n- {script: b, name: bee}\n", []string{"a", "bee"}},
		{"single app", "script: ./srv\ninstances: 2\n", []string{"srv"}},
		{"apps as one mapping", "apps:\n  script: a\n", []string{"a"}},
		{"deploy ignored", "apps:\n  - script: a\ndeploy:\n  production: {user: x}\n", []string{"a"}},
		{"comments only after apps", "# apps\napps:\n  - script: a # the one\n", []string{"a"}},
	}
	for _, tt := range tests {
		f, _ := mustParse(t, tt.name, tt.src)
		var names []string
		for _, a := range f.Apps {
			names = append(names, a.Name)
		}
		if !reflect.DeepEqual(names, tt.names) {
			t.Errorf("%s: names %q, want %q", tt.name, names, tt.names)
		}
	}
}

func TestEnvSelection(t *testing.T) {
	src := `apps:
  - script: a
    env: {A: base, B: base}
    env_production: {A: prod, C: prod}
    env_staging: {A: stage}
  - script: b
    env: {A: base}
`
	tests := []struct {
		env  string
		a, b map[string]string
	}{
		{"", map[string]string{"A": "base", "B": "base"}, map[string]string{"A": "base"}},
		{"production", map[string]string{"A": "prod", "B": "base", "C": "prod"}, map[string]string{"A": "base"}},
		{"staging", map[string]string{"A": "stage", "B": "base"}, map[string]string{"A": "base"}},
		{"nowhere", map[string]string{"A": "base", "B": "base"}, map[string]string{"A": "base"}},
	}
	for _, tt := range tests {
		f, err := parseIn(t, t.TempDir(), "app.yaml", src, Options{Env: tt.env})
		if err != nil {
			t.Fatalf("env %q: %v", tt.env, err)
		}
		if msg := eqv(f.Apps[0].Env, tt.a) + eqv(f.Apps[1].Env, tt.b); msg != "" {
			t.Errorf("env %q: %s", tt.env, msg)
		}
	}
}

func TestInterpreterByExtension(t *testing.T) {
	tests := []struct{ script, want string }{
		{"a.js", "node"}, {"a.mjs", "node"}, {"a.cjs", "node"}, {"a.JS", "node"},
		{"a.py", "python3"}, {"a.sh", "bash"}, {"a.rb", "ruby"}, {"a.php", "php"}, {"a.pl", "perl"},
		{"a.ts", ""}, {"a", ""}, {"a.bin", ""},
	}
	for _, tt := range tests {
		f, dir := mustParse(t, tt.script, "script: "+tt.script+"\n")
		a := f.Apps[0]
		if a.Interpreter != tt.want {
			t.Errorf("%s: interpreter %q, want %q", tt.script, a.Interpreter, tt.want)
		}
		wantCmd := tt.want
		if wantCmd == "" {
			wantCmd = tt.script
		}
		if a.Command != wantCmd {
			t.Errorf("%s: command %q, want %q", tt.script, a.Command, wantCmd)
		}
		_ = dir
	}
}

func TestScriptFoundInDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "server"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := parseIn(t, dir, "app.yaml", "apps:\n  - script: server\n  - script: app.py\n  - script: sh\n", Options{})
	if err != nil {
		t.Fatalf("script found in dir: %v", err)
	}
	if msg := eq(f.Apps[0].Command, filepath.Join(dir, "server")) +
		eqs(f.Apps[1].Args, []string{filepath.Join(dir, "app.py")}) +
		eq(f.Apps[2].Command, "sh"); msg != "" {
		t.Errorf("script found in dir: %s", msg)
	}
}

func TestCount(t *testing.T) {
	tests := []struct{ instances, cpus, want int }{
		{1, 8, 1}, {4, 8, 4}, {16, 8, 16}, {0, 8, 8}, {-1, 8, 7}, {-8, 8, 1}, {-20, 8, 1}, {0, 1, 1}, {0, 0, 1},
	}
	for _, tt := range tests {
		a := &App{Instances: tt.instances}
		if got := a.Count(tt.cpus); got != tt.want {
			t.Errorf("instances %d on %d CPUs: Count = %d, want %d", tt.instances, tt.cpus, got, tt.want)
		}
	}
}

// TestErrors checks that each bad file fails with a message holding every
// want string, and that the first problem is at line (when line > 0).
func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		file string // default app.yaml
		src  string
		line int
		want []string
	}{
		{"yaml syntax", "", "apps:\n  - script: x\n    name: a: b\n", 3, []string{"app.yaml:3", "YAML syntax error"}},
		{"yaml syntax unclosed flow", "", "apps:\n  - script: [x\n", 2, []string{"YAML syntax error"}},
		{"yaml tab indent", "", "apps:\n\t- script: x\n", 2, []string{"YAML syntax error", "tabs"}},
		{"yaml unknown anchor", "", "apps:\n  - script: x\n  - *nope\n", 3, []string{"unknown anchor"}},
		{"second document", "", "apps:\n  - script: x\n---\napps:\n  - script: y\n", 4, []string{"second YAML document"}},
		{"empty file", "", "", 0, []string{"app.yaml: no apps"}},
		{"blank file", "", "\n  \n# nothing\n", 0, []string{"no apps"}},
		{"null apps", "", "apps:\n", 1, []string{"no apps"}},
		{"empty apps", "", "apps: []\n", 1, []string{"no apps"}},
		{"scalar file", "", "hello\n", 1, []string{"must be a mapping with an apps: list"}},
		{"apps not a list", "", "apps: 3\n", 1, []string{"apps: must be a list of apps (got 3)"}},
		{"app not a mapping", "", "apps:\n  - ./server\n", 2, []string{"apps[0]", "must be a mapping"}},
		{"unknown key did-you-mean", "", "apps:\n  - name: web\n    script: x\n    instanses: 3\n", 4,
			[]string{`app.yaml:4:5: app "web": instanses: unknown app key; did you mean "instances"?`}},
		{"unknown key camel case", "", "apps:\n  - script: x\n    execMode: fork\n", 3, []string{`did you mean "exec_mode"?`}},
		{"unknown key swapped letters", "", "apps:\n  - script: x\n    nmae: web\n", 3, []string{`did you mean "name"?`}},
		{"unknown key far from all", "", "apps:\n  - script: x\n    zzzzzz: 1\n", 3, []string{"zzzzzz: unknown app key", "listen, balance"}},
		{"unknown top-level key", "", "aps:\n  - script: x\n", 1, []string{`aps: unknown top-level key`, `did you mean "apps"?`}},
		{"app key at top level", "", "apps:\n  - script: x\ninstances: 2\n", 3, []string{"instances: is an app key, not a top-level key"}},
		{"top-level key in app", "", "apps:\n  - script: x\n    apps: []\n", 3, []string{"apps: is a top-level key"}},
		{"key twice", "", "apps:\n  - script: x\n    script: y\n", 3, []string{"script: is given twice (first at line 2)"}},
		{"alias and key both", "", "apps:\n  - script: x.js\n    interpreter: node\n    exec_interpreter: node\n", 4, []string{"exec_interpreter: means the same as interpreter (line 3)"}},
		{"missing script", "", "apps:\n  - name: web\n", 2, []string{`app "web": missing script`}},
		{"null script", "", "apps:\n  - name: web\n    script: ~\n", 2, []string{`app "web": missing script`}},
		{"unknown key with null value", "", "apps:\n  - script: x\n    instanses:\n", 3, []string{`did you mean "instances"?`}},
		{"control characters in key", "", "apps:\n  - script: x\n    \"a\\tb\": 1\n", 3, []string{`"a\tb": unknown app key`}},
		{"empty script", "", "apps:\n  - script: ''\n", 2, []string{"script: must not be empty"}},
		{"empty script list", "", "apps:\n  - script: []\n", 2, []string{"script: must not be an empty list"}},
		{"script wrong type", "", "apps:\n  - script: {a: b}\n", 2, []string{"script: must be a string or a list of strings (got a mapping)"}},
		{"script list item wrong type", "", "apps:\n  - script: [x, [y]]\n", 2, []string{"script[1]: must be a string or a number (got a list)"}},
		{"duplicate names", "", "apps:\n  - name: web\n    script: a\n  - name: web\n    script: b\n", 4, []string{`name "web" is used by two apps (lines 2 and 4)`}},
		{"duplicate default names", "", "apps:\n  - script: ./a/app.js\n  - script: ./b/app.js\n", 3, []string{`name "app" is used by two apps`, "named after its script"}},
		{"name wrong type", "", "apps:\n  - script: x\n    name: [a]\n", 3, []string{"name: must be a string (got a list)"}},
		{"name blank", "", "apps:\n  - script: x\n    name: '  '\n", 3, []string{"name: must not be empty"}},
		{"name too long", "", "apps:\n  - script: x\n    name: " + strings.Repeat("n", 256) + "\n", 3, []string{"name: must be at most 255 bytes"}},
		{"default name control chars", "", "apps:\n  - script: \"./a\\tb\"\n", 2, []string{"defaults to the script's base name", "set name:"}},
		{"name control chars", "", "apps:\n  - script: x\n    name: \"a\\tb\"\n", 3, []string{"control characters"}},
		{"instances word", "", "apps:\n  - name: web\n    script: x\n    instances: lots\n", 4,
			[]string{`app.yaml:4:5: app "web": instances: must be a whole number, "max" (one per CPU), or a negative number for CPUs minus n (got "lots")`}},
		{"instances float", "", "apps:\n  - script: x\n    instances: 1.5\n", 3, []string{"instances: must be a whole number", "(got 1.5)"}},
		{"instances bool", "", "apps:\n  - script: x\n    instances: true\n", 3, []string{"instances: must be"}},
		{"instances huge", "", "apps:\n  - script: x\n    instances: 99999999999999999999999\n", 3, []string{"instances: must be"}},
		{"instances too many", "", "apps:\n  - script: x\n    instances: 100000\n", 3, []string{"more than launch allows"}},
		{"exec_mode typo", "", "apps:\n  - script: x\n    exec_mode: clustr\n", 3, []string{`exec_mode: must be "cluster" or "fork"`, `did you mean "cluster"?`}},
		{"fork with listen", "", "apps:\n  - script: x\n    exec_mode: fork\n    listen: 8080\n", 4, []string{"fork mode workers get no sockets; remove listen or use exec_mode: cluster"}},
		{"env not a mapping", "", "apps:\n  - script: x\n    env: [A]\n", 3, []string{"env: must be a mapping of NAME: value (got a list)"}},
		{"env nested value", "", "apps:\n  - script: x\n    env:\n      A: {b: c}\n", 4, []string{"env.A: must be a string, number or boolean (got a mapping)"}},
		{"env name with =", "", "apps:\n  - script: x\n    env: {\"A=B\": c}\n", 3, []string{"must not contain '='"}},
		{"env section bad even unused", "", "apps:\n  - script: x\n    env_prod: [x]\n", 3, []string{"env_prod: must be a mapping"}},
		{"autorestart string", "", "apps:\n  - script: x\n    autorestart: yes\n", 3, []string{`autorestart: must be true or false (got "yes")`}},
		{"stop_exit_codes range", "", "apps:\n  - script: x\n    stop_exit_codes: [0, 256]\n", 3, []string{"stop_exit_codes[1]: must be an exit code from 0 to 255"}},
		{"max_restarts negative", "", "apps:\n  - script: x\n    max_restarts: -1\n", 3, []string{"max_restarts: must not be negative"}},
		{"start_nice too high", "", "apps:\n  - script: x\n    start_nice: 20\n", 3, []string{"start_nice: must be from 0 to 19 (got 20)", "10 is a good value"}},
		{"min_uptime negative", "", "apps:\n  - script: x\n    min_uptime: -5\n", 3, []string{"min_uptime: must not be negative (got -5)"}},
		{"restart_delay negative string", "", "apps:\n  - script: x\n    restart_delay: -1s\n", 3, []string{"restart_delay: must not be negative"}},
		{"kill_timeout bad unit", "", "apps:\n  - script: x\n    kill_timeout: 1d\n", 3, []string{"kill_timeout: must be milliseconds (1500) or a duration with a unit"}},
		{"kill_timeout float", "", "apps:\n  - script: x\n    kill_timeout: 1.5\n", 3, []string{"kill_timeout: must be milliseconds"}},
		{"listen_timeout zero", "", "apps:\n  - script: x\n    listen_timeout: 0\n", 3, []string{"listen_timeout: must be more than 0"}},
		{"duration too large", "", "apps:\n  - script: x\n    min_uptime: 9223372036854775807\n", 3, []string{"min_uptime: is too large"}},
		{"max_memory_restart bad", "", "apps:\n  - script: x\n    max_memory_restart: 12Q\n", 3, []string{`max_memory_restart: must be bytes (536870912) or a size with a unit ("512M", "1.5G", "100K") (got "12Q")`}},
		{"max_memory_restart negative", "", "apps:\n  - script: x\n    max_memory_restart: -1\n", 3, []string{"max_memory_restart: must not be negative"}},
		{"wait_ready string", "", "apps:\n  - script: x\n    wait_ready: \"true\"\n", 3, []string{"wait_ready: must be true or false"}},
		{"interpreter_args without interpreter", "", "apps:\n  - script: ./x\n    interpreter_args: -u\n", 3, []string{"interpreter_args: needs an interpreter"}},
		{"args unclosed quote", "", "apps:\n  - script: x\n    args: \"a 'b\"\n", 3, []string{"args: has a single quote (') that is never closed"}},
		{"args wrong type", "", "apps:\n  - script: x\n    args: {a: b}\n", 3, []string{"args: must be a string or a list of strings"}},
		{"cwd empty", "", "apps:\n  - script: x\n    cwd: ''\n", 3, []string{"cwd: must not be empty"}},
		{"unknown user", "", "apps:\n  - script: x\n    uid: no-such-user-here\n", 3, []string{`uid: no user "no-such-user-here" on this machine`}},
		{"unknown group", "", "apps:\n  - script: x\n    gid: no-such-group-here\n", 3, []string{`gid: no group "no-such-group-here" on this machine`}},
		{"numeric uid without entry needs gid", "", "apps:\n  - script: x\n    uid: 54321\n", 3, []string{"no entry in the user database", "set gid"}},
		{"listen bad address", "", "apps:\n  - script: x\n    listen: [\"localhost\"]\n", 3, []string{`listen[0]: must be "host:port", ":port", a port number, or "unix:/path/to.sock" (got "localhost")`}},
		{"listen port range", "", "apps:\n  - script: x\n    listen: \":70000\"\n", 3, []string{"listen: the port must be a number from 0 to 65535"}},
		{"listen int port range", "", "apps:\n  - script: x\n    listen: 70000\n", 3, []string{"listen: a port must be from 0 to 65535"}},
		{"listen named port", "", "apps:\n  - script: x\n    listen: \":http\"\n", 3, []string{"port must be a number"}},
		{"listen ipv6 without brackets", "", "apps:\n  - script: x\n    listen: \"::1:8080\"\n", 3, []string{"brackets"}},
		{"listen star host", "", "apps:\n  - script: x\n    listen: \"*:8080\"\n", 3, []string{"host must be an IP address or a host name", `write ":8080"`}},
		{"listen scheme", "", "apps:\n  - script: x\n    listen: \"http://0.0.0.0:80\"\n", 3, []string{"without a scheme"}},
		{"listen unix empty", "", "apps:\n  - script: x\n    listen: \"unix:\"\n", 3, []string{"needs a path"}},
		{"listen unix too long", "", "apps:\n  - script: x\n    listen: \"unix:/" + strings.Repeat("a", 120) + "\"\n", 3, []string{"the limit is 107"}},
		{"listen list item wrong type", "", "apps:\n  - script: x\n    listen: [[80]]\n", 3, []string{"listen[0]: must be"}},
		{"listen mapping no address", "", "apps:\n  - script: x\n    listen: [{name: a}]\n", 3, []string{"listen[0]: missing address"}},
		{"listen mapping unknown key", "", "apps:\n  - script: x\n    listen: [{adress: ':80'}]\n", 3, []string{"listen[0].adress: unknown key", `did you mean "address"?`}},
		{"listen bad fd name", "", "apps:\n  - script: x\n    listen: [{address: ':80', name: 'a:b'}]\n", 3, []string{"listen[0].name: must be printable ASCII without ':'"}},
		{"listen default fd name from app", "", "apps:\n  - name: \"a:b\"\n    script: x\n    listen: ':80'\n", 4, []string{"defaults to the app name"}},
		{"listen mode on tcp", "", "apps:\n  - script: x\n    listen: [{address: ':80', mode: '0600'}]\n", 3, []string{"mode: applies only to unix sockets"}},
		{"listen bad mode", "", "apps:\n  - script: x\n    listen: [{address: 'unix:/tmp/a.sock', mode: '0999'}]\n", 3, []string{"mode: must be octal permission bits"}},
		{"listen duplicate in app", "", "apps:\n  - script: x\n    listen: [':8080', '127.0.0.1:8080']\n", 3, []string{`"127.0.0.1:8080" clashes with ":8080" in this app`}},
		{"listen duplicate across apps", "", "apps:\n  - name: a\n    script: x\n    listen: 127.0.0.1:80\n  - name: b\n    script: y\n    listen: ['127.0.0.1:80']\n", 7, []string{`app "b": listen: "127.0.0.1:80" clashes with "127.0.0.1:80" in app "a" (line 4)`}},
		{"listen duplicate unix", "", "apps:\n  - name: a\n    script: x\n    listen: unix:/tmp/s.sock\n  - name: b\n    script: y\n    listen: unix:/tmp/../tmp/s.sock\n", 7, []string{"clashes"}},
		{"balance unknown", "", "apps:\n  - script: x\n    balance: roundrobin\n", 3, []string{`balance: must be "shared", "reuseport" or "proxy"`}},
		{"balance proxy without listen", "", "apps:\n  - script: x\n    balance: proxy\n", 3, []string{"balance: proxy needs a listen address", "add listen:"}},
		{"balance proxy with empty listen", "", "apps:\n  - script: x\n    listen: []\n    balance: proxy\n", 4, []string{"balance: proxy needs a listen address"}},
		{"balance proxy with fork", "", "apps:\n  - script: x\n    exec_mode: fork\n    balance: proxy\n", 4, []string{"balance: proxy works only with exec_mode: cluster", "remove exec_mode: fork"}},
		{"protocol without proxy", "", "apps:\n  - name: web\n    script: x\n    listen: 80\n    protocol: tcp\n", 5, []string{`app.yaml:5:5: app "web": protocol: works only with balance: proxy; add balance: proxy, or remove protocol`}},
		{"proxy_to without proxy", "", "apps:\n  - script: x\n    balance: reuseport\n    proxy_to: unix\n", 4, []string{"proxy_to: works only with balance: proxy"}},
		{"sticky without proxy", "", "apps:\n  - script: x\n    sticky: ip\n", 3, []string{"sticky: works only with balance: proxy"}},
		{"health_check without proxy", "", "apps:\n  - script: x\n    health_check: /healthz\n", 3, []string{"health_check: works only with balance: proxy"}},
		{"proxy mapping without proxy", "", "apps:\n  - script: x\n    proxy: {strategy: least}\n", 3, []string{"proxy: works only with balance: proxy"}},
		{"protocol unknown", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    protocol: https\n", 5, []string{`protocol: must be "http" or "tcp" (got "https"); did you mean "http"?`}},
		{"protocol wrong type", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    protocol: [http]\n", 5, []string{`protocol: must be "http" or "tcp" (got a list)`}},
		{"proxy_to unknown", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy_to: unx\n", 5, []string{`proxy_to: must be "tcp" or "unix" (got "unx"); did you mean "unix"?`}},
		{"proxy not a mapping", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy: least\n", 5, []string{"proxy: must be a mapping of strategy, max_conns"}},
		{"proxy unknown sub-key", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy:\n      max_con: 5\n", 6, []string{"proxy.max_con: unknown key in proxy", `did you mean "max_conns"?`}},
		{"proxy app key inside", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy: {protocol: tcp}\n", 5, []string{"proxy.protocol: unknown key in proxy", "protocol is an app key: write it beside balance: proxy"}},
		{"proxy strategy unknown", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy:\n      strategy: roundrobin\n", 6, []string{`proxy.strategy: must be "least" or "round_robin" (got "roundrobin"); did you mean "round_robin"?`}},
		{"proxy max_conns zero", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy: {max_conns: 0}\n", 5, []string{"proxy.max_conns: must be from 1 to 1000000 (got 0)"}},
		{"proxy max_conns word", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy: {max_conns: lots}\n", 5, []string{`proxy.max_conns: must be a whole number (got "lots")`}},
		{"proxy timeout negative", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy:\n      idle_timeout: -1s\n", 6, []string{"proxy.idle_timeout: must not be negative"}},
		{"proxy read_timeout bad", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy:\n      read_timeout: soon\n", 6, []string{"proxy.read_timeout: must be milliseconds"}},
		{"proxy max_header_size small", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy:\n      max_header_size: 100\n", 6, []string{"proxy.max_header_size: must be from 1K to 64M (got 100)"}},
		{"proxy max_header_size bad", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    proxy:\n      max_header_size: big\n", 6, []string{"proxy.max_header_size: must be bytes"}},
		{"sticky true", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    sticky: true\n", 5, []string{`sticky: must be "ip"`, "write sticky: ip"}},
		{"sticky unknown", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    sticky: cookie\n", 5, []string{`sticky: must be "ip"`, `(got "cookie")`}},
		{"sticky with tcp", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    protocol: tcp\n    sticky: ip\n", 6, []string{"sticky: needs protocol: http (this app's protocol is tcp)"}},
		{"health_check with tcp", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    protocol: tcp\n    health_check: /h\n", 6, []string{"health_check: needs protocol: http"}},
		{"health_check no slash", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    health_check: healthz\n", 5, []string{`health_check: must be a URL path starting with "/" (got "healthz")`}},
		{"health_check true", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    health_check: true\n", 5, []string{"health_check: must be a string (got true)"}},
		{"health_check missing path", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    health_check: {interval: 1s}\n", 5, []string{"health_check: missing path"}},
		{"health_check bad path in mapping", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    health_check:\n      path: /a b\n", 6, []string{"health_check.path: must not contain blanks"}},
		{"health_check unknown sub-key", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    health_check:\n      path: /h\n      intervall: 1s\n", 7, []string{"health_check.intervall: unknown key in health_check", `did you mean "interval"?`}},
		{"health_check zero interval", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    health_check:\n      path: /h\n      interval: 0\n", 7, []string{"health_check.interval: must be more than 0"}},
		{"health_check timeout past interval", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    health_check:\n      path: /h\n      interval: 1s\n      timeout: 3s\n", 8, []string{"health_check.timeout: 3s is longer than the interval 1s"}},
		{"health_check interval below default timeout", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    health_check:\n      path: /h\n      interval: 1s\n", 7, []string{"health_check.interval: 1s is shorter than the timeout of one check (2s by default)"}},
		{"ready http with tcp", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    protocol: tcp\n    ready: http:/up\n", 6, []string{"ready: http needs protocol: http"}},
		{"ready http bad path", "", "apps:\n  - script: x\n    listen: 80\n    balance: proxy\n    ready: \"http:/a b\"\n", 5, []string{"ready: http: the path must not contain blanks"}},
		{"out_file empty", "", "apps:\n  - script: x\n    out_file: ''\n", 3, []string{`out_file: must not be empty; leave it out, or write "/dev/null", for no file`}},
		{"out_file list", "", "apps:\n  - script: x\n    out_file: [a]\n", 3, []string{`out_file: must be a file path, or "/dev/null" or "NULL" for no file (got a list)`}},
		{"out_file true", "", "apps:\n  - script: x\n    out_file: true\n", 3, []string{`out_file: must be a file path`}},
		{"out_file directory", "", "apps:\n  - script: x\n    out_file: logs/\n", 3, []string{`out_file: names a directory (got "logs/"); give a file name, such as logs/out.log`}},
		{"error alias bad", "", "apps:\n  - script: x\n    err: {a: b}\n", 3, []string{`err: must be a file path`}},
		{"out_file and alias both", "", "apps:\n  - script: x\n    out_file: a.log\n    output: b.log\n", 4, []string{"output: means the same as out_file (line 3); keep one"}},
		{"error_file and alias both", "", "apps:\n  - script: x\n    err_log: a.log\n    error_file: b.log\n", 4, []string{"means the same as"}},
		{"log and log_file both", "", "apps:\n  - script: x\n    log_file: a.log\n    log: b.log\n", 4, []string{"log: means the same as log_file (line 3)"}},
		{"log_file same as out_file", "", "apps:\n  - script: x\n    out_file: a.log\n    log_file: ./a.log\n", 4, []string{"log_file: is the same file as out_file (line 3), so every line would be written to it twice"}},
		{"log_date_format empty", "", "apps:\n  - script: x\n    log_date_format: ''\n", 3, []string{"log_date_format: must not be empty"}},
		{"log_date_format unknown token", "", "apps:\n  - script: x\n    log_date_format: YYYY-Q\n", 3, []string{`log_date_format: has the token "Q", which launch does not support`}},
		{"log_date_format ordinal", "", "apps:\n  - script: x\n    log_date_format: Do MMM\n", 3, []string{`has the token "Do"`}},
		{"log_date_format unsafe literal", "", "apps:\n  - script: x\n    log_date_format: \"[Jan] YYYY\"\n", 3, []string{`has the text "Jan", which Go's time layouts would read`}},
		{"log_date_format unclosed bracket", "", "apps:\n  - script: x\n    log_date_format: \"[at HH\"\n", 3, []string{`has a "[" that is never closed`}},
		{"log_date_format number", "", "apps:\n  - script: x\n    log_date_format: true\n", 3, []string{"log_date_format: must be a string (got true)"}},
		{"log_max_size bad", "", "apps:\n  - script: x\n    log_max_size: huge\n", 3, []string{`log_max_size: must be bytes (536870912) or a size with a unit`}},
		{"log_max_size tiny", "", "apps:\n  - script: x\n    log_max_size: 10\n", 3, []string{"log_max_size: must be 0 (never rotate) or at least 1K (got 10)"}},
		{"log_max_size negative", "", "apps:\n  - script: x\n    log_max_size: -1\n", 3, []string{"log_max_size: must not be negative"}},
		{"log_max_files negative", "", "apps:\n  - script: x\n    log_max_files: -1\n", 3, []string{"log_max_files: must be from 0 to 10000 rotated files kept (got -1)"}},
		{"log_max_files word", "", "apps:\n  - script: x\n    log_max_files: few\n", 3, []string{`log_max_files: must be a whole number (got "few")`}},
		{"metrics in an app", "", "apps:\n  - script: x\n    metrics: 127.0.0.1:9464\n", 3, []string{"metrics: is a top-level key, not an app key; move it out of the app"}},
		{"metrics in a lone app", "", "script: x\nmetrics: 127.0.0.1:9464\n", 2, []string{"metrics: is a top-level key", "list the app under apps: and write metrics at the top of the file"}},
		{"metrics no port", "", "metrics: localhost\napps:\n  - script: x\n", 1, []string{`app.yaml:1:1: metrics: must be an address "host:port" such as "127.0.0.1:9464", or "" or false for off (got "localhost")`}},
		{"metrics port only", "", "metrics: 9464\napps:\n  - script: x\n", 1, []string{`metrics: must be an address`, `(got 9464); write host and port, such as metrics: "127.0.0.1:9464"`}},
		{"metrics named port", "", "metrics: 'localhost:http'\napps:\n  - script: x\n", 1, []string{"metrics: the port must be a number from 0 to 65535"}},
		{"metrics port range", "", "metrics: ':70000'\napps:\n  - script: x\n", 1, []string{"metrics: the port must be a number"}},
		{"metrics scheme", "", "metrics: http://127.0.0.1:9464\napps:\n  - script: x\n", 1, []string{"without a scheme"}},
		{"metrics ipv6 without brackets", "", "metrics: '::1:9464'\napps:\n  - script: x\n", 1, []string{"brackets"}},
		{"metrics bad host", "", "metrics: '*:9464'\napps:\n  - script: x\n", 1, []string{"host must be an IP address or a host name", `write ":9464"`}},
		{"metrics unix", "", "metrics: unix:/tmp/m.sock\napps:\n  - script: x\n", 1, []string{"unix sockets are not supported for metrics"}},
		{"metrics true", "", "metrics: true\napps:\n  - script: x\n", 1, []string{"metrics: must be an address", "(got true)"}},
		{"metrics clashes with listen", "", "metrics: ':8080'\napps:\n  - name: web\n    script: x\n    listen: 127.0.0.1:8080\n", 1, []string{`metrics: ":8080" clashes with "127.0.0.1:8080" in app "web" (line 5)`}},
		{"shutdown_delay bad", "", "shutdown_delay: later\napps:\n  - script: x\n", 1, []string{`shutdown_delay: must be milliseconds (1500) or a duration with a unit ("1.5s", "200ms", "2m") (got "later")`}},
		{"shutdown_delay negative", "", "apps:\n  - script: x\nshutdown_delay: -5\n", 3, []string{"shutdown_delay: must not be negative"}},
		{"sample_interval too short", "", "sample_interval: 50ms\napps:\n  - script: x\n", 1, []string{`sample_interval: must be at least 100ms (got "50ms")`}},
		{"sample_interval zero", "", "sample_interval: 0\napps:\n  - script: x\n", 1, []string{`sample_interval: must be at least 100ms (got 0)`}},
		{"top-level key typo", "", "metric: ':9464'\napps:\n  - script: x\n", 1, []string{"metric: unknown top-level key; the top level may hold apps, metrics", `did you mean "metrics"?`}},
		{"top-level key typo sample", "", "sample_intervall: 1s\napps:\n  - script: x\n", 1, []string{`did you mean "sample_interval"?`}},
		{"json metrics bad", "app.json", "{\"apps\": [{\"script\": \"x\"}],\n \"metrics\": \"nope\"}", 2, []string{"app.json:2:2: metrics: must be an address"}},
		{"unix with reuseport", "", "apps:\n  - script: x\n    listen: unix:/tmp/a.sock\n    balance: reuseport\n", 4, []string{"reuseport does not work with unix sockets"}},
		{"ready unknown", "", "apps:\n  - script: x\n    ready: notfy\n", 3, []string{"ready: must be notify, ipc, delay", `did you mean "notify"?`}},
		{"ready listen without proxy", "", "apps:\n  - script: x\n    ready: listen\n", 3, []string{"ready: listen works only with balance: proxy"}},
		{"ready http without proxy", "", "apps:\n  - script: x\n    ready: http:/healthz\n", 3, []string{"ready: http works only with balance: proxy"}},
		{"ready http without path", "", "apps:\n  - script: x\n    ready: http\n", 3, []string{"http needs a path"}},
		{"ready bad delay", "", "apps:\n  - script: x\n    ready: delay:soon\n", 3, []string{"ready: delay: the duration must be milliseconds"}},
		{"ready delay past listen_timeout", "", "apps:\n  - script: x\n    ready: delay:5s\n", 3, []string{"not shorter than listen_timeout 3s"}},
		{"written delay past listen_timeout", "", "apps:\n  - script: x\n    ready: delay:1s\n    listen_timeout: 500\n", 4, []string{"listen_timeout: the ready delay 1s is not shorter"}},
		{"stop_signal unknown", "", "apps:\n  - script: x\n    stop_signal: SIGFOO\n", 3, []string{"stop_signal: must be a signal name"}},
		{"stop_signal out of range", "", "apps:\n  - script: x\n    stop_signal: 99\n", 3, []string{"stop_signal: must be a signal"}},
		{"merge key not a mapping", "", "apps:\n  - <<: 3\n    script: x\n", 2, []string{"merge key needs a mapping"}},
		{"key not a scalar", "", "apps:\n  - script: x\n    ? [a]\n    : b\n", 3, []string{"a key must be a plain word"}},
		{"several problems in order", "", "apps:\n  - script: x\n    instances: x\n    kill_timeout: -1\n", 3,
			[]string{"app.yaml:3:5: app \"x\": instances", "\napp.yaml:4:5: app \"x\": kill_timeout"}},
		{"json syntax", "app.json", "{\n  \"apps\": [\n    {\"script\": \"x\",}\n  ]\n}\n", 3, []string{"app.json:3:20: JSON syntax error"}},
		{"json trailing data", "app.json", "{\"apps\": []} x\n", 1, []string{"JSON syntax error"}},
		{"json wrong type", "app.json", "{\n  \"apps\": [\n    {\"script\": \"x\",\n     \"instances\": true}\n  ]\n}\n", 4, []string{"app.json:4:6: app \"x\": instances: must be"}},
		{"json duplicate key", "app.json", "{\"apps\": [{\"script\": \"x\", \"script\": \"y\"}]}", 1, []string{"script: is given twice"}},
		{"json empty", "app.json", "  \n", 0, []string{"no apps"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.file
			if file == "" {
				file = "app.yaml"
			}
			dir := t.TempDir()
			f, err := Parse(filepath.Join(dir, file), []byte(tt.src), Options{CPUs: 4})
			if err == nil {
				t.Fatalf("%s: no error; apps %+v\nfile:\n%s", tt.name, f.Apps, tt.src)
			}
			msg := strings.ReplaceAll(err.Error(), dir+"/", "")
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%s: error\n%s\ndoes not contain\n%s", tt.name, msg, w)
				}
			}
			var first *Error
			if !errors.As(err, &first) {
				t.Fatalf("%s: error %T is not an *Error", tt.name, err)
			}
			if first.File != filepath.Join(dir, file) {
				t.Errorf("%s: Error.File = %q", tt.name, first.File)
			}
			if tt.line > 0 && first.Line != tt.line {
				t.Errorf("%s: first error at line %d, want %d:\n%s", tt.name, first.Line, tt.line, msg)
			}
		})
	}
}

func TestErrorsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("apps:\n")
	for i := 0; i < 50; i++ {
		b.WriteString("  - script: x\n    instances: bad\n    name: a" + string(rune('A'+i%26)) + strings.Repeat("z", i) + "\n")
	}
	_, err := Parse("app.yaml", []byte(b.String()), Options{})
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("capped: got %T %v, want Errors", err, err)
	}
	if len(es) != maxErrors+1 || !strings.Contains(es[len(es)-1].Msg, "more problems not shown") {
		t.Errorf("capped: %d errors, last %q", len(es), es[len(es)-1].Msg)
	}
	var one *Error
	if !errors.As(err, &one) || one != es[0] {
		t.Errorf("capped: errors.As(*Error) did not find the first problem")
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"full", &Error{File: "app.yaml", Line: 7, Column: 5, App: `app "web"`, Key: "instances", Msg: "must be", Hint: "try 2"},
			`app.yaml:7:5: app "web": instances: must be; try 2`},
		{"no column", &Error{File: "a.yaml", Line: 2, Key: "k", Msg: "m"}, "a.yaml:2: k: m"},
		{"no position", &Error{File: "a.js", App: `app "x"`, Msg: "missing script"}, `a.js: app "x": missing script`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	es := Errors{tests[1].err, tests[2].err}
	if got, want := es.Error(), tests[1].want+"\n"+tests[2].want; got != want {
		t.Errorf("Errors: got %q, want %q", got, want)
	}
}

func TestWarnings(t *testing.T) {
	src := `apps:
  - name: web
    script: x
    watch: true
    merge_logs: true
    out_file: /tmp/out.log
    log_file: true
    max_memory_restart: 1G
    balance: reuseport
    listen: 80
  - name: api
    script: y
    watch: false
deploy:
  production: {}
`
	f, _ := mustParse(t, "warnings", src)
	want := []string{
		`app.yaml:4: app "web": watch is a PM2 key launch does not implement; ignored`,
		`app.yaml:5: app "web": merge_logs is a PM2 key launch does not implement; ignored`,
		`app.yaml:7: app "web": log_file: true asks for PM2's default log path, which launch does not have; no combined log is written (give a path to have one)`,
		`app.yaml:14: deploy is not supported; ignored`,
	}
	var got []string
	for _, w := range f.Warnings {
		got = append(got, w[strings.LastIndex(w[:strings.Index(w, ".yaml:")], "/")+1:])
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
}

func TestPM2Ecosystem(t *testing.T) {
	// A typical PM2 ecosystem file, as JSON: it must run, with warnings.
	src := `{
  "apps": [{
    "name": "api",
    "script": "./dist/server.js",
    "instances": "max",
    "exec_mode": "cluster",
    "watch": false,
    "max_memory_restart": "300M",
    "env": {"NODE_ENV": "development", "PORT": 3000},
    "env_production": {"NODE_ENV": "production"},
    "log_date_format": "YYYY-MM-DD HH:mm Z",
    "error_file": "./logs/err.log",
    "out_file": "./logs/out.log",
    "merge_logs": true,
    "time": true,
    "autorestart": true,
    "max_restarts": 10,
    "min_uptime": "10s",
    "listen_timeout": 8000,
    "kill_timeout": 5000,
    "wait_ready": true,
    "node_args": "--max-old-space-size=256",
    "instance_var": "INSTANCE_ID",
    "cron_restart": "0 0 * * *",
    "namespace": "backend"
  }]
}`
	dir := t.TempDir()
	f, err := parseIn(t, dir, "ecosystem.json", src, Options{Env: "production"})
	if err != nil {
		t.Fatalf("pm2 ecosystem: %v", err)
	}
	a := f.Apps[0]
	if msg := eq(a.Command, "node") + eqs(a.Args, []string{"--max-old-space-size=256", filepath.Join(dir, "dist/server.js")}) +
		eqv(a.Instances, 0) + eqv(a.Env, map[string]string{"NODE_ENV": "production", "PORT": "3000"}) +
		eqv(a.Ready, Ready{Kind: ReadyIPC}) + eqv(a.MinUptime, 10*time.Second) + eqv(a.MaxRestarts, 10) +
		eqv(a.MaxMemoryRestart, int64(300<<20)) +
		eq(a.OutFile, filepath.Join(dir, "logs/out.log")) + eq(a.ErrorFile, filepath.Join(dir, "logs/err.log")) +
		eq(a.LogDateFormat, "2006-01-02 15:04 -07:00"); msg != "" {
		t.Errorf("pm2 ecosystem: %s", msg)
	}
	if len(f.Warnings) != 6 {
		t.Errorf("pm2 ecosystem: %d warnings, want 6:\n%s", len(f.Warnings), strings.Join(f.Warnings, "\n"))
	}
}

func TestJSONMatchesYAML(t *testing.T) {
	yamlSrc := `apps:
  - name: web
    script: [./server, -v]
    instances: -1
    env: {A: "1", B: "x"}
    listen: ["127.0.0.1:8080", {address: "unix:web.sock", name: admin}]
    min_uptime: 2s
    stop_signal: SIGINT
`
	jsonSrc := `{"apps": [{
  "name": "web",
  "script": ["./server", "-v"],
  "instances": -1,
  "env": {"A": 1, "B": "x"},
  "listen": ["127.0.0.1:8080", {"address": "unix:web.sock", "name": "admin"}],
  "min_uptime": "2s",
  "stop_signal": "SIGINT"
}]}`
	dir := t.TempDir()
	fy, err := parseIn(t, dir, "app.yaml", yamlSrc, Options{})
	if err != nil {
		t.Fatalf("json vs yaml: yaml: %v", err)
	}
	fj, err := parseIn(t, dir, "app.json", jsonSrc, Options{})
	if err != nil {
		t.Fatalf("json vs yaml: json: %v", err)
	}
	if fj.Apps[0].Line != 1 || fj.Apps[0].Listen[1].Line != 6 {
		t.Errorf("json vs yaml: json lines: app %d, listen[1] %d", fj.Apps[0].Line, fj.Apps[0].Listen[1].Line)
	}
	y, j := *fy.Apps[0], *fj.Apps[0]
	y.Line, j.Line = 0, 0
	for i := range y.Listen {
		y.Listen[i].Line, j.Listen[i].Line = 0, 0
	}
	if !reflect.DeepEqual(y, j) {
		t.Errorf("json vs yaml:\nyaml %+v\njson %+v", y, j)
	}
}

func TestJSONUnicode(t *testing.T) {
	// yaml.v3 rejects surrogate-pair escapes; JSON files may use them.
	src := `{"apps": [{"script": "x", "name": "web \ud83d\ude00", "env": {"E": "caf\u00e9"}}], "x-note": "\/"}`
	f, err := Parse("app.json", []byte("\xef\xbb\xbf"+src), Options{})
	if err != nil {
		t.Fatalf("json unicode: %v", err)
	}
	if msg := eq(f.Apps[0].Name, "web 😀") + eq(f.Apps[0].Env["E"], "café"); msg != "" {
		t.Errorf("json unicode: %s", msg)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.yml")
	if err := os.WriteFile(path, []byte("apps:\n  - script: ./x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path, Options{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if f.Apps[0].Command != filepath.Join(dir, "x") {
		t.Errorf("load: command %q", f.Apps[0].Command)
	}

	missing := filepath.Join(dir, "nope.yaml")
	_, err = Load(missing, Options{})
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load missing: got %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("load missing: message %q lacks the file or the reason", err)
	}
	if _, err := Load(dir, Options{}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("load directory: got %v", err)
	}
}

func TestEcosystemJS(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH")
	}
	tests := []struct {
		name string
		file string
		src  string
		want func(f *File, dir string) string
		err  string
	}{
		{"module.exports with env and logging", "ecosystem.config.js", `
console.log("noise on stdout");
module.exports = {
  apps: [{
    name: "api",
    script: "./server.js",
    instances: 2,
    env: { FROM_ENV: process.env.LAUNCH_TEST_VALUE, N: 1 },
    watch: false,
  }],
};
setInterval(() => {}, 1000); // a module that would never exit
`, func(f *File, dir string) string {
			a := f.Apps[0]
			return eq(a.Name, "api") + eq(a.Command, "node") + eqs(a.Args, []string{filepath.Join(dir, "server.js")}) +
				eqv(a.Instances, 2) + eqv(a.Env, map[string]string{"FROM_ENV": "from-test", "N": "1"}) +
				eqv(len(f.Warnings), 1)
		}, ""},
		{"top-level settings beside apps", "ecosystem.config.js", `
module.exports = {
  apps: [{ name: "web", script: "./web.js", listen: 8080, balance: "proxy", error_file: "./logs/web.err" }],
  metrics: "127.0.0.1:9464",
  shutdown_delay: 2000,
  sample_interval: "500ms",
};
`, func(f *File, dir string) string {
			a := f.Apps[0]
			return eq(f.Metrics, "127.0.0.1:9464") + eqv(f.ShutdownDelay, 2*time.Second) + eqv(f.SampleInterval, 500*time.Millisecond) +
				eqv(a.Balance, BalanceProxy) + eq(a.ErrorFile, filepath.Join(dir, "logs/web.err")) + eqv(len(f.Warnings), 0)
		}, ""},
		{"cjs list with require", "apps.cjs", `
const path = require("path");
module.exports = [{ script: path.join(__dirname, "w.py") }];
`, func(f *File, dir string) string { return eqs(f.Apps[0].Args, []string{filepath.Join(dir, "w.py")}) }, ""},
		{"error has no line", "ecosystem.config.js", `module.exports = { apps: [{ script: "x", instances: "lots" }] };`, nil,
			`ecosystem.config.js: app "x": instances: must be`},
		{"syntax error", "ecosystem.config.js", "module.exports = { apps: [ ;\n", nil, "SyntaxError"},
		{"exports nothing", "ecosystem.config.js", "// empty\n", nil, "no apps"},
	}
	t.Setenv("LAUNCH_TEST_VALUE", "from-test")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			if err := os.WriteFile(path, []byte(tt.src), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Load(path, Options{})
			if tt.err != "" {
				if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), dir+"/", ""), tt.err) {
					t.Fatalf("%s: got error %v, want one containing %q", tt.name, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if msg := tt.want(f, dir); msg != "" {
				t.Errorf("%s: %s", tt.name, msg)
			}
		})
	}
}

func TestEcosystemWithoutNode(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Parse(filepath.Join(t.TempDir(), "ecosystem.config.js"), nil, Options{})
	if err == nil || !strings.Contains(err.Error(), "needs node, which is not on PATH") || !strings.Contains(err.Error(), "YAML or JSON") {
		t.Errorf("without node: got %v", err)
	}
}

func TestNodeEvalOption(t *testing.T) {
	eval := func(path string) ([]byte, error) {
		if strings.HasSuffix(path, "bad.js") {
			return nil, errors.New("boom")
		}
		return []byte(`{"apps": [{"script": "x"}]}`), nil
	}
	f, err := Parse("good.js", nil, Options{NodeEval: eval})
	if err != nil || f.Apps[0].Name != "x" {
		t.Errorf("node eval option: got %v, %v", f, err)
	}
	_, err = Parse("bad.js", nil, Options{NodeEval: eval})
	if err == nil || !strings.Contains(err.Error(), "bad.js: cannot evaluate the ecosystem file: boom") {
		t.Errorf("node eval option failing: got %v", err)
	}
}

func TestAliasBomb(t *testing.T) {
	// Each level names the one below ten times: 10^9 pairs if expanded.
	var b strings.Builder
	b.WriteString("x-l0: &l0 {A: 1, B: 2, C: 3, D: 4, E: 5, F: 6, G: 7, H: 8, I: 9, J: 10}\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("x-l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " {<<: [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]}\n")
	}
	b.WriteString("apps:\n  - script: x\n    env: *l9\n")
	start := time.Now()
	_, err := Parse("app.yaml", []byte(b.String()), Options{})
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("alias bomb: took %v", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "too many values") {
		t.Errorf("alias bomb: got %v, want the budget error", err)
	}

	// A list that names itself.
	if _, err := Parse("app.yaml", []byte("apps: &a [*a]\n"), Options{}); err == nil {
		t.Errorf("self alias: no error")
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"0", 0, ""}, {"1500", 1500 * time.Millisecond, ""}, {" 20 ", 20 * time.Millisecond, ""},
		{"1.5s", 1500 * time.Millisecond, ""}, {"200ms", 200 * time.Millisecond, ""}, {"1h30m", 90 * time.Minute, ""},
		{"-1", 0, "must not be negative"}, {"-1s", 0, "must not be negative"}, {"-99999999999999999999", 0, "must not be negative"},
		{"", 0, "is empty"}, {"soon", 0, "must be milliseconds"}, {"1d", 0, "must be milliseconds"},
		{"9223372036854775807", 0, "too large"}, {"99999999999999999999", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("duration %q: got %v, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("duration %q: got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""}, {"1024", 1024, ""}, {"100K", 100 << 10, ""}, {"512M", 512 << 20, ""}, {"512MB", 512 << 20, ""},
		{"512mb", 512 << 20, ""}, {"1G", 1 << 30, ""}, {"1.5G", 3 << 29, ""}, {"1gib", 1 << 30, ""}, {"2T", 2 << 40, ""},
		{" 64 M ", 64 << 20, ""}, {"10B", 10, ""},
		{"-1M", 0, "must not be negative"}, {"12Q", 0, "must be bytes"}, {"M", 0, "must be bytes"}, {"", 0, "must be bytes"},
		{"1.2.3G", 0, "must be bytes"}, {"99999999999T", 0, "too large"}, {"99999999999999999999", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := parseMemory(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("memory %q: got %v, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("memory %q: got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestSignals(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		ok   bool
	}{
		{"SIGTERM", syscall.SIGTERM, true}, {"TERM", syscall.SIGTERM, true}, {"sigint", syscall.SIGINT, true},
		{"SIGHUP", syscall.SIGHUP, true}, {"QUIT", syscall.SIGQUIT, true}, {"KILL", syscall.SIGKILL, true},
		{"USR1", syscall.SIGUSR1, true}, {"SIGUSR2", syscall.SIGUSR2, true}, {"winch", syscall.SIGWINCH, true},
		{"15", syscall.SIGTERM, true}, {"64", syscall.Signal(64), true},
		{"0", 0, false}, {"65", 0, false}, {"SIGFOO", 0, false}, {"", 0, false}, {"-9", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSignal(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("signal %q: got %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"", nil, ""},
		{"   ", nil, ""},
		{"a b  c", []string{"a", "b", "c"}, ""},
		{"\ta\nb ", []string{"a", "b"}, ""},
		{`'a b' "c d"`, []string{"a b", "c d"}, ""},
		{`a'b'"c"d`, []string{"abcd"}, ""},
		{`''`, []string{""}, ""},
		{`"" x`, []string{"", "x"}, ""},
		{`a\ b`, []string{"a b"}, ""},
		{`\'x\'`, []string{"'x'"}, ""},
		{`'a\b'`, []string{`a\b`}, ""},
		{`"a\"b\\c\$d\e"`, []string{`a"b\c$d\e`}, ""},
		{`--name="my app" -x`, []string{"--name=my app", "-x"}, ""},
		{"a\\\nb", []string{"ab"}, ""},
		{`'open`, nil, "single quote"},
		{`"open`, nil, "double quote"},
		{`"esc\"`, nil, "double quote"},
		{`a\`, nil, "lone backslash"},
	}
	for _, tt := range tests {
		got, err := splitArgs(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("split %q: got %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("split %q: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"0660", 0o660, true}, {"660", 0o660, true}, {"0o600", 0o600, true}, {"0777", 0o777, true}, {"0", 0, true},
		{"0999", 0, false}, {"1777", 0, false}, {"rw", 0, false}, {"", 0, false},
	}
	for _, tt := range tests {
		got, err := parseMode(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("mode %q: got %o, %v; want %o (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	keys := keyNames(appKeys)
	tests := []struct{ in, want string }{
		{"instanses", "instances"}, {"Instances", "instances"}, {"exec-mode", "exec_mode"}, {"execMode", "exec_mode"},
		{"scirpt", "script"}, {"nmae", "name"}, {"enviroment", ""}, {"listn", "listen"}, {"stopsignal", "stop_signal"},
		{"max_memory_restrat", "max_memory_restart"}, {"zzz", ""}, {"", ""},
		{"out_fil", "out_file"}, {"errorfile", "error_file"}, {"logDateFormat", "log_date_format"}, {"healthcheck", "health_check"},
		{"proxyto", "proxy_to"}, {"log_max_file", "log_max_files"},
	}
	for _, tt := range tests {
		got := didYouMean(tt.in, keys)
		want := ""
		if tt.want != "" {
			want = `did you mean "` + tt.want + `"?`
		}
		if got != want {
			t.Errorf("did you mean %q: got %q, want %q", tt.in, got, want)
		}
	}
}

// TestKeyTable checks that the table of keys is consistent: every alias
// names an implemented key, and no key is in both tables.
func TestKeyTable(t *testing.T) {
	for k, info := range appKeys {
		if info.kind == alias {
			if c, ok := appKeys[info.canonical]; !ok || c.kind != implemented {
				t.Errorf("key table: alias %s names %q, which is not implemented", k, info.canonical)
			}
		}
		if _, ok := topKeys[k]; ok {
			t.Errorf("key table: %s is both an app key and a top-level key", k)
		}
		if strings.HasPrefix(k, envSectionPrefix) {
			t.Errorf("key table: %s collides with env sections", k)
		}
	}
	for _, k := range proxyOnly {
		if info, ok := appKeys[k]; !ok || info.kind != implemented {
			t.Errorf("key table: proxy key %s is not an implemented app key", k)
		}
	}
}

func TestMomentToGo(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"YYYY-MM-DD HH:mm:ss Z", "2006-01-02 15:04:05 -07:00", ""},
		{"YYYY-MM-DD HH:mm Z", "2006-01-02 15:04 -07:00", ""},
		{"YYYY-MM-DDTHH:mm:ss", "2006-01-02T15:04:05", ""},
		{"YY/M/D H:m:s", "06/1/2 15:4:5", ""}, // H pads: Go has no unpadded 24-hour
		{"hh:mm A", "03:04 PM", ""},
		{"h:mm a", "3:04 pm", ""},
		{"HH:mm:ss.SSS", "15:04:05.000", ""},
		{"HH:mm:ss,SS", "15:04:05,00", ""},
		{"ss.S", "05.0", ""},
		{"YYYYMMDD HHmmss ZZ", "20060102 150405 -0700", ""},
		{"ddd, DD MMM YYYY", "Mon, 02 Jan 2006", ""},
		{"dddd D MMMM", "Monday 2 January", ""},
		{"[at] HH:mm", "at 15:04", ""},
		{"[T]HH [x]", "T15 x", ""},
		{"[]YYYY", "2006", ""},
		{"HH:mm (UTCZ)", "15:04 (UTC-07:00)", ""},
		{"", "", "must not be empty"},
		{"  ", "", "must not be empty"},
		{"YYYY-Q", "", `the token "Q"`},
		{"YYYYY", "", `the token "YYYYY"`},
		{"Do MMMM", "", `the token "Do"`},
		{"X", "", `the token "X"`},
		{"x", "", `the token "x"`},
		{"HH:mm z", "", `the token "z"`},
		{"dd", "", `the token "dd"`},
		{"kk:mm", "", `the token "kk"`},
		{"SSSS", "", `the token "SSSS"`},
		{"ssSSS", "", `without a "." or ","`},
		{"[Jan] YYYY", "", `the text "Jan"`},
		{"YYYY [Monday]", "", `the text "Monday"`},
		{"HH:mm 1", "", `the text " 1"`},
		{"HH [PM]", "", `the text "PM"`},
		{"[at HH", "", "never closed"},
		{"YYYY_D", "", "tokens run together"},
		{"ss.SSSYY", "", "tokens run together"},
	}
	for _, tt := range tests {
		got, err := momentToGo(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("moment %q: got %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("moment %q: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// What the layout prints, for one time: the format's meaning.
	at := time.Date(2024, time.July, 4, 17, 5, 9, 42_000_000, time.FixedZone("", 2*3600))
	layout, err := momentToGo("YYYY-MM-DD hh:mm:ss.SSS A Z")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := at.Format(layout), "2024-07-04 05:05:09.042 PM +02:00"; got != want {
		t.Errorf("moment format: got %q, want %q", got, want)
	}
}

func TestTopLevel(t *testing.T) {
	tests := []struct {
		name, file, src string
		metrics         string
		shutdown        time.Duration
		sample          time.Duration
	}{
		{"yaml all", "app.yaml", "metrics: 127.0.0.1:9464\nshutdown_delay: 5s\nsample_interval: 250ms\napps:\n  - script: x\n", "127.0.0.1:9464", 5 * time.Second, 250 * time.Millisecond},
		{"yaml ms and ipv6", "app.yaml", "metrics: '[::1]:09464'\nshutdown_delay: 1500\nsample_interval: 100\napps:\n  - script: x\n", "[::1]:9464", 1500 * time.Millisecond, 100 * time.Millisecond},
		{"every address", "app.yaml", "metrics: ':9464'\napps:\n  - script: x\n", ":9464", 0, time.Second},
		{"off: empty", "app.yaml", "metrics: ''\napps:\n  - script: x\n", "", 0, time.Second},
		{"off: false", "app.yaml", "metrics: false\napps:\n  - script: x\n", "", 0, time.Second},
		{"null is not given", "app.yaml", "metrics: ~\nshutdown_delay: ~\nsample_interval: ~\napps:\n  - script: x\n", "", 0, time.Second},
		{"after apps, with anchors", "app.yaml", "x-d: &d {script: x}\napps:\n  - <<: *d\nsample_interval: 2s\nmetrics: localhost:9100\n", "localhost:9100", 0, 2 * time.Second},
		{"port 0", "app.yaml", "metrics: 127.0.0.1:0\napps:\n  - script: x\n    listen: 127.0.0.1:0\n", "127.0.0.1:0", 0, time.Second},
		{"other host same port", "app.yaml", "metrics: 127.0.0.1:8080\napps:\n  - script: x\n    listen: 127.0.0.2:8080\n", "127.0.0.1:8080", 0, time.Second},
		{"top-level list has defaults", "app.yaml", "- script: x\n", "", 0, time.Second},
		{"json", "app.json", `{"metrics": "0.0.0.0:9464", "shutdown_delay": 2000, "sample_interval": "1.5s", "apps": [{"script": "x"}]}`, "0.0.0.0:9464", 2 * time.Second, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		f, err := parseIn(t, t.TempDir(), tt.file, tt.src, Options{})
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if msg := eq(f.Metrics, tt.metrics) + eqv(f.ShutdownDelay, tt.shutdown) + eqv(f.SampleInterval, tt.sample); msg != "" {
			t.Errorf("%s: %s", tt.name, msg)
		}
		if len(f.Warnings) != 0 {
			t.Errorf("%s: warnings %q", tt.name, f.Warnings)
		}
	}

	// An ecosystem.config.js exports {apps: [...]} with our keys beside
	// apps; they pass through node's JSON like any other.
	eval := func(string) ([]byte, error) {
		return []byte(`{"apps": [{"script": "x", "out_file": "o.log"}], "metrics": "127.0.0.1:9464", "shutdown_delay": 3000}`), nil
	}
	dir := t.TempDir()
	f, err := Parse(filepath.Join(dir, "ecosystem.config.js"), nil, Options{NodeEval: eval})
	if err != nil {
		t.Fatalf("ecosystem top level: %v", err)
	}
	if msg := eq(f.Metrics, "127.0.0.1:9464") + eqv(f.ShutdownDelay, 3*time.Second) + eqv(f.SampleInterval, time.Second) +
		eq(f.Apps[0].OutFile, filepath.Join(dir, "o.log")); msg != "" {
		t.Errorf("ecosystem top level: %s", msg)
	}
	bad := func(string) ([]byte, error) { return []byte(`{"apps": [{"script": "x"}], "sample_interval": 10}`), nil }
	_, err = Parse(filepath.Join(dir, "ecosystem.config.js"), nil, Options{NodeEval: bad})
	if err == nil || !strings.Contains(err.Error(), "ecosystem.config.js: sample_interval: must be at least 100ms (got 10)") {
		t.Errorf("ecosystem top level error: got %v", err)
	}
}

func TestDiff(t *testing.T) {
	parse := func(src string) *App {
		t.Helper()
		f, err := Parse("/srv/app.yaml", []byte(src), Options{CPUs: 4})
		if err != nil {
			t.Fatalf("diff: %v\n%s", err, src)
		}
		return f.Apps[0]
	}
	base := "apps:\n  - name: web\n    script: app.js\n    args: [-v]\n    env: {A: '1'}\n    listen: 8080\n"
	tests := []struct {
		name, old, new string
		want           []string
	}{
		{"same", base, base, nil},
		{"moved in the file", base, "# moved\n\n" + base, nil},
		{"env and script", base, strings.Replace(strings.Replace(base, "A: '1'", "A: '2'", 1), "app.js", "main.js", 1), []string{"script", "env"}},
		{"args only", base, strings.Replace(base, "[-v]", "[-q]", 1), []string{"args"}},
		{"script and args", base, strings.Replace(strings.Replace(base, "[-v]", "[-q]", 1), "app.js", "main.js", 1), []string{"script", "args"}},
		{"interpreter_args", base, base + "    node_args: --inspect\n", []string{"args"}},
		{"interpreter", base, base + "    interpreter: /opt/node\n", []string{"interpreter"}},
		{"cwd moves the script", base, base + "    cwd: sub\n", []string{"cwd"}},
		{"instances", base, base + "    instances: 1\n", []string{"instances"}},
		{"wait_ready changes ready", base, base + "    wait_ready: true\n", []string{"wait_ready", "ready"}},
		{"listen", base, strings.Replace(base, "8080", "8081", 1), []string{"listen"}},
		{"env section", base, base + "    env_production: {A: '1'}\n", nil},
		{"uid spelled otherwise", base + "    uid: root\n", base + "    uid: 0\n", nil},
		{"uid and gid", base, base + "    uid: 0\n    gid: 0\n", []string{"uid", "gid"}},
		{"logs", base, base + "    out: o.log\n    log_date_format: HH:mm\n    log_max_files: 1\n", []string{"out_file", "log_date_format", "log_max_files"}},
		{"to proxy", base, base + "    balance: proxy\n", []string{"ready", "balance", "protocol", "proxy_to", "proxy.strategy", "proxy.max_conns",
			"proxy.read_timeout", "proxy.write_timeout", "proxy.idle_timeout", "proxy.max_header_size"}},
		{"proxy settings", base + "    balance: proxy\n", base + "    balance: proxy\n    sticky: ip\n    health_check: /h\n    proxy: {strategy: round_robin}\n",
			[]string{"proxy.strategy", "sticky", "health_check"}},
	}
	for _, tt := range tests {
		if got := Diff(parse(tt.old), parse(tt.new)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("diff %s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := Diff(nil, nil); got != nil {
		t.Errorf("diff nil: got %q", got)
	}
	if got := Diff(nil, parse(base)); len(got) == 0 || got[0] != "name" {
		t.Errorf("diff from nil: got %q", got)
	}
}

// TestDiffCoversEveryField changes each field of App and of Proxy in turn
// and checks that Diff names a key, so a field added later cannot be
// forgotten there.
func TestDiffCoversEveryField(t *testing.T) {
	base := func() *App {
		return &App{Name: "web", Script: "s", Command: "c", Args: []string{"a"}, Env: map[string]string{"A": "1"},
			Listen: []Listen{{Network: TCP, Address: ":80"}}, Credential: &syscall.Credential{Uid: 1, Gid: 1},
			Proxy: &Proxy{Protocol: "http"}}
	}
	ignored := map[string]bool{"Line": true, "User": true}
	typ := reflect.TypeOf(App{})
	for i := 0; i < typ.NumField(); i++ {
		field := typ.Field(i)
		if ignored[field.Name] {
			if got := Diff(base(), mutate(t, base(), field.Name)); got != nil {
				t.Errorf("diff: %s is not compared, yet changing it gives %q", field.Name, got)
			}
			continue
		}
		if got := Diff(base(), mutate(t, base(), field.Name)); len(got) == 0 {
			t.Errorf("diff: changing App.%s changes no key", field.Name)
		}
	}
	ptyp := reflect.TypeOf(Proxy{})
	for i := 0; i < ptyp.NumField(); i++ {
		a, b := base(), base()
		setDifferent(t, reflect.ValueOf(b.Proxy).Elem().Field(i), ptyp.Field(i).Name)
		if got := Diff(a, b); len(got) == 0 {
			t.Errorf("diff: changing Proxy.%s changes no key", ptyp.Field(i).Name)
		}
	}
}

// mutate changes the named field of a.
func mutate(t *testing.T, a *App, name string) *App {
	setDifferent(t, reflect.ValueOf(a).Elem().FieldByName(name), name)
	return a
}

// setDifferent sets v to a value different from the one base() gives it.
func setDifferent(t *testing.T, v reflect.Value, name string) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 7)
	case reflect.Slice:
		switch v.Type().Elem().Kind() {
		case reflect.String:
			v.Set(reflect.ValueOf([]string{"other"}))
		case reflect.Int:
			v.Set(reflect.ValueOf([]int{3}))
		default:
			v.Set(reflect.ValueOf([]Listen{{Network: TCP, Address: ":81"}}))
		}
	case reflect.Map:
		v.Set(reflect.ValueOf(map[string]string{"B": "2"}))
	case reflect.Struct: // Ready
		v.Set(reflect.ValueOf(Ready{Kind: ReadyNotify}))
	case reflect.Pointer:
		switch v.Type().Elem() {
		case reflect.TypeOf(syscall.Credential{}):
			v.Set(reflect.ValueOf(&syscall.Credential{Uid: 2, Gid: 1}))
		default:
			v.Set(reflect.Zero(v.Type()))
		}
	default:
		t.Fatalf("diff: no way to change field %s of kind %s; extend setDifferent", name, v.Kind())
	}
}
