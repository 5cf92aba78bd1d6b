package config

import (
	"os"
	"syscall"
	"time"
)

// Balance says how connections on an app's listen addresses reach its workers.
type Balance string

// The balance modes of design §3.
const (
	// BalanceShared binds one socket per address and hands the same socket
	// to every worker; whichever worker accepts first gets the connection.
	BalanceShared Balance = "shared"
	// BalanceReusePort binds one SO_REUSEPORT socket per worker slot.
	BalanceReusePort Balance = "reuseport"
	// BalanceProxy accepts in the master and forwards to private worker ports.
	BalanceProxy Balance = "proxy"
)

// ReadyKind says how the master learns that a worker is ready for traffic.
type ReadyKind string

// Readiness kinds (design §4).
const (
	// ReadyDelay: online after Ready.Delay without exiting (einhorn's timer ack).
	ReadyDelay ReadyKind = "delay"
	// ReadyNotify: the worker sends READY=1 on its NOTIFY_SOCKET.
	ReadyNotify ReadyKind = "notify"
	// ReadyIPC: a Node worker calls process.send('ready') on its IPC channel.
	ReadyIPC ReadyKind = "ipc"
	// ReadyListen: proxy mode, the worker's private port accepts.
	ReadyListen ReadyKind = "listen"
	// ReadyHTTP: proxy mode, GET Ready.Path on the worker's port answers 2xx.
	ReadyHTTP ReadyKind = "http"
)

// Ready is a parsed `ready` value.
type Ready struct {
	Kind  ReadyKind
	Delay time.Duration // for ReadyDelay
	Path  string        // for ReadyHTTP
}

// Network of a listen address.
type Network string

// Address networks.
const (
	TCP  Network = "tcp"
	Unix Network = "unix"
)

// Listen is one address from an app's `listen` list.
type Listen struct {
	// Network is TCP or Unix.
	Network Network
	// Address is host:port for TCP ("[::1]:8080", "0.0.0.0:80", ":8080")
	// or the socket path for Unix.
	Address string
	// Name goes into LISTEN_FDNAMES for this socket; the app's name when unset.
	Name string
	// Mode is the permission of a unix socket file (default 0660).
	Mode os.FileMode
	// Line is where the address was written, for error messages.
	Line int
}

// String returns the address as a user writes it ("unix:/run/app.sock").
func (l Listen) String() string {
	if l.Network == Unix {
		return "unix:" + l.Address
	}
	return l.Address
}

// Proxy protocols, for Proxy.Protocol.
const (
	// ProtocolHTTP: the master is an HTTP reverse proxy (keep-alive pools,
	// balancing per request).
	ProtocolHTTP = "http"
	// ProtocolTCP: the master splices each TCP connection to one worker.
	ProtocolTCP = "tcp"
)

// Proxy targets, for Proxy.To.
const (
	// ProxyToTCP: each worker listens on a private 127.0.0.1 port, given
	// to it in PORT.
	ProxyToTCP = "tcp"
	// ProxyToUnix: each worker listens on a private unix socket.
	ProxyToUnix = "unix"
)

// Proxy strategies, for Proxy.Strategy.
const (
	// StrategyLeast sends each request (or connection, for tcp) to the
	// worker with the fewest outstanding ones.
	StrategyLeast = "least"
	// StrategyRoundRobin sends requests to the workers in turn.
	StrategyRoundRobin = "round_robin"
)

// Proxy is an app's proxy mode (balance: proxy, design §3): the master
// accepts on the app's listen addresses and forwards to workers that each
// listen on a private address. Every field holds its final value.
type Proxy struct {
	// Protocol is ProtocolHTTP (default) or ProtocolTCP (key protocol).
	Protocol string
	// To is where workers listen: ProxyToTCP (default) or ProxyToUnix
	// (key proxy_to).
	To string
	// Strategy is StrategyLeast (default) or StrategyRoundRobin
	// (key proxy.strategy).
	Strategy string
	// Sticky sends a client IP's requests to the same worker while it is
	// in rotation (key sticky: ip; false or none = off). HTTP only.
	Sticky bool
	// MaxConns bounds the client connections the master holds open for
	// the app at once (proxy.max_conns, default 10000).
	MaxConns int
	// ReadTimeout bounds reading a client's request, headers and body
	// (proxy.read_timeout, default 60s); 0 = no limit.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the response to the client
	// (proxy.write_timeout, default 60s); 0 = no limit.
	WriteTimeout time.Duration
	// IdleTimeout closes a client's keep-alive connection idle this long
	// (proxy.idle_timeout, default 90s); 0 = no limit.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (proxy.max_header_size,
	// a memory size, default 64K). HTTP only.
	MaxHeaderBytes int
	// HealthPath is the path of the active health check (GET, 2xx is
	// healthy; key health_check.path); "" = no active check. HTTP only.
	HealthPath string
	// HealthInterval is the time between checks of a worker
	// (health_check.interval, default 5s); 0 when HealthPath is "".
	HealthInterval time.Duration
	// HealthTimeout bounds one check (health_check.timeout, default 2s);
	// 0 when HealthPath is "".
	HealthTimeout time.Duration
}

// ExecMode is PM2's exec_mode.
type ExecMode string

// Exec modes. In cluster mode (the default) workers get the master's sockets;
// in fork mode they get none and `listen` must be empty.
const (
	ExecCluster ExecMode = "cluster"
	ExecFork    ExecMode = "fork"
)

// App is one entry of the app file after parsing, validation and defaults.
// Every field holds its final value: callers never apply defaults again.
type App struct {
	// Name is unique in the file; defaults to the script's base name without extension.
	Name string
	// Command is the program launch executes: the interpreter when there is
	// one, else the script itself. Not yet resolved against PATH.
	Command string
	// Args follow Command: interpreter args, the script, then `args`.
	Args []string
	// Script is the script as written (first element of a list).
	Script string
	// Interpreter is the chosen interpreter, "" for none.
	Interpreter string
	// Dir is the working directory, absolute (default: the app file's directory).
	Dir string
	// Instances is the count as written: >0 exact, 0 = one per CPU,
	// <0 = CPUs minus n. Use Count to resolve it.
	Instances int
	// InstancesSet says whether the file gave `instances`.
	InstancesSet bool
	ExecMode     ExecMode
	// Env is added to the master's environment for every worker.
	Env map[string]string
	// Autorestart (default true): restart a worker whose process exits.
	Autorestart bool
	// StopExitCodes are exit codes after which the worker is not restarted.
	StopExitCodes []int
	// MaxRestarts unstable restarts in a row before the worker is errored (16).
	MaxRestarts int
	// StartNice: a worker starts this many nice levels below the master
	// and is raised back when ready, so that starting workers (a rolling
	// reload) take less CPU from serving ones; 0 (default) = off.
	StartNice int
	// MinUptime: a run shorter than this is unstable (1s).
	MinUptime time.Duration
	// RestartDelay is a fixed delay before a restart; 0 if unset.
	RestartDelay time.Duration
	// ExpBackoffRestartDelay is the first delay of PM2's exponential backoff; 0 if unset.
	ExpBackoffRestartDelay time.Duration
	// MaxMemoryRestart in bytes; 0 = no limit.
	MaxMemoryRestart int64
	// KillTimeout: time from the stop signal to SIGKILL (1600ms).
	KillTimeout time.Duration
	// ListenTimeout: a worker not ready within it is a failed start (3000ms).
	ListenTimeout time.Duration
	// WaitReady is PM2's wait_ready as written.
	WaitReady bool
	// Ready is the resolved readiness rule.
	Ready Ready
	// Credential, when non-nil, runs workers as this uid/gid.
	Credential *syscall.Credential
	// User is the uid/gid as written, for messages.
	User string
	// Listen are the addresses the master binds for this app.
	Listen []Listen
	// Balance is the balance mode (default shared).
	Balance Balance
	// StopSignal is sent to the worker's process group to stop it (SIGTERM).
	StopSignal syscall.Signal

	// OutFile is where the workers' stdout is written (PM2's out_file,
	// aliases out, output, out_log): an absolute path (a relative one is
	// resolved against the app file's directory), or "" for no file (not
	// given, or PM2's "/dev/null", "NULL" or false). All instances of the
	// app write to the one file.
	OutFile string
	// ErrorFile is where the workers' stderr is written (PM2's error_file,
	// aliases error, err, err_file, err_log); same rules as OutFile.
	ErrorFile string
	// LogFile receives stdout and stderr together (PM2's log_file, alias
	// log); same rules as OutFile. It may be given beside OutFile and
	// ErrorFile: each line then goes to both.
	LogFile string
	// LogDateFormat is the Go time layout ("2006-01-02 15:04:05 -07:00")
	// that prefixes each log line, converted from PM2's moment.js
	// log_date_format ("YYYY-MM-DD HH:mm:ss Z"); "" = no timestamp.
	LogDateFormat string
	// LogMaxSize is the size in bytes at which a log file is rotated
	// (log_max_size, default 10M); 0 = never rotate.
	LogMaxSize int64
	// LogMaxFiles is how many rotated files are kept besides the live one
	// (log_max_files, default 5): out.log.1 is the newest; 0 = none kept.
	LogMaxFiles int

	// Proxy holds proxy mode's settings: non-nil exactly when Balance is
	// BalanceProxy, with every default applied.
	Proxy *Proxy

	// Line is where the app's entry starts in the file.
	Line int
}

// File is a parsed app file.
type File struct {
	// Path is the file as given.
	Path string
	Apps []*App
	// Metrics is the address ("127.0.0.1:9464", "[::1]:9464", ":9464")
	// where the master serves Prometheus /metrics, /healthz and /readyz
	// (top-level key metrics); "" = off (the default).
	Metrics string
	// ShutdownDelay is how long the master, asked to stop, keeps serving
	// with /readyz failing before it stops the workers, so that a load
	// balancer sees it leave first (top-level key shutdown_delay,
	// default 0).
	ShutdownDelay time.Duration
	// SampleInterval is how often the master samples each worker's memory
	// and CPU, for max_memory_restart and metrics (top-level key
	// sample_interval, default 1s, at least 100ms).
	SampleInterval time.Duration
	// Warnings are non-fatal findings (PM2 keys we ignore, features not yet
	// supported), each naming file, line and key.
	Warnings []string
}

// Count resolves Instances against cpus (runtime.GOMAXPROCS(0) in the
// master): 0 means cpus, a negative n means cpus+n, never below 1.
func (a *App) Count(cpus int) int {
	n := a.Instances
	switch {
	case n == 0:
		n = cpus
	case n < 0:
		n = cpus + n
	}
	if n < 1 {
		n = 1
	}
	return n
}
