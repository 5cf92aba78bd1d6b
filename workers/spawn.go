package workers

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec says what to start for one worker.
type Spec struct {
	// Name identifies the worker in logs ("web.0").
	Name string
	// Path is the program to execute, already resolved (absolute or found in PATH).
	Path string
	// Args are the program's arguments, without argv[0].
	Args []string
	// Dir is the working directory.
	Dir string
	// Env is the app's environment. Spawn strips any LISTEN_*,
	// NOTIFY_SOCKET, WATCHDOG_* and NODE_CHANNEL_* from it and sets its own.
	Env []string
	// Files are the listening sockets, handed over as fds 3, 4, ...
	Files []*os.File
	// FileNames go into LISTEN_FDNAMES, one per file.
	FileNames []string
	// Notify gives the worker its own NOTIFY_SOCKET.
	Notify bool
	// IPC gives the worker a Node IPC channel (NODE_CHANNEL_FD).
	IPC bool
	// Credential, when set, runs the worker as this user and group.
	Credential *syscall.Credential
	// StartNice, when > 0, starts the worker this many nice levels below
	// the master (at most 19); Process.RestoreNice raises it back. Use it
	// only when CanRestoreNice says the master may.
	StartNice int
	// Output receives the worker's stdout and stderr, line by line.
	// Output nil discards them.
	Output *Log
}

// Process is one running worker process: the group leader of its own
// process group. It is created by Spawner.Start and ends when the reaper
// routes its exit status to it.
type Process struct {
	PID     int
	Started time.Time

	reaper *Reaper
	done   chan struct{} // closed by the reaper after status is set
	status ExitStatus

	readyOnce sync.Once
	ready     chan struct{}
	outDone   chan struct{} // closed when stderr reaches EOF

	niced    bool // started below baseNice (Spec.StartNice); RestoreNice clears it
	baseNice int

	mu     sync.Mutex
	notes  []string // STATUS= lines, newest last (bounded)
	tail   []string // last stderr lines (bounded), for exit hints
	closer []func()
}

// tailLines is how many stderr lines a Process keeps for Tail.
const tailLines = 16

// Tail returns the last lines the process wrote to stderr, oldest first.
func (p *Process) Tail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tail...)
}

func (p *Process) addTail(line []byte) {
	if len(line) > 512 {
		line = line[:512]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.tail) == tailLines {
		p.tail = p.tail[1:]
	}
	p.tail = append(p.tail, string(line))
}

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Status is the exit status; valid after Done is closed.
func (p *Process) Status() ExitStatus {
	<-p.done
	return p.status
}

// OutputDone is closed when the process's stderr has reached EOF (every
// holder of the pipe closed it); it may never close if a grandchild keeps
// the pipe open.
func (p *Process) OutputDone() <-chan struct{} { return p.outDone }

// Ready is closed when the worker reports readiness (READY=1 on its
// NOTIFY_SOCKET, or 'ready' on its IPC channel). It is never closed for
// workers that have neither.
func (p *Process) Ready() <-chan struct{} { return p.ready }

// Signal sends sig to the worker's whole process group. After the process
// has been reaped it returns os.ErrProcessDone and sends nothing.
func (p *Process) Signal(sig syscall.Signal) error {
	return p.reaper.signalGroup(p, sig)
}

// Status lines (STATUS=...) the worker sent, newest last.
func (p *Process) Notes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.notes...)
}

func (p *Process) markReady() { p.readyOnce.Do(func() { close(p.ready) }) }

func (p *Process) addNote(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.notes) == 8 {
		p.notes = p.notes[1:]
	}
	p.notes = append(p.notes, s)
}

// exited runs once, from the reaper, when the status is known.
func (p *Process) exited() {
	p.mu.Lock()
	closers := p.closer
	p.closer = nil
	p.mu.Unlock()
	for _, c := range closers {
		c()
	}
	close(p.done)
}

// Spawner forks every worker from one OS thread that never exits. Linux
// sends a child's Pdeathsig when the *thread* that forked it exits, not the
// process (Go issue 27505): forking from arbitrary goroutines would kill
// workers whenever the Go scheduler retires a thread. Workers get
// Pdeathsig SIGKILL, so none outlives the master.
//
// Every worker starts through the launch binary's trampoline (see
// Trampoline), which sets LISTEN_PID to its own pid and then execs the app:
// the pid survives exec, so the app sees LISTEN_PID equal to its own pid,
// exactly as under systemd.
type Spawner struct {
	reaper  *Reaper
	exe     string // the trampoline binary
	runDir  string // notify sockets live here
	reqs    chan spawnReq
	done    chan struct{}
	closeMu sync.Mutex
	closed  bool
	seq     int
}

type spawnReq struct {
	fn    func() error
	reply chan error
}

// NewSpawner starts the spawner thread. exe is the binary that implements
// the trampoline (normally /proc/self/exe); runDir is a directory of the
// master's for the workers' notify sockets (made mode 0711: workers that
// run as another user can reach their own socket but not list others).
func NewSpawner(r *Reaper, exe, runDir string) *Spawner {
	_ = os.Chmod(runDir, 0o711)
	s := &Spawner{
		reaper: r,
		exe:    exe,
		runDir: runDir,
		reqs:   make(chan spawnReq),
		done:   make(chan struct{}),
	}
	started := make(chan struct{})
	go s.thread(started)
	<-started
	return s
}

// thread is the one goroutine that forks. It stays locked to its OS thread
// and returns only on Close (when no worker should be alive any more).
func (s *Spawner) thread(started chan<- struct{}) {
	runtime.LockOSThread()
	// Never unlocked: when this goroutine returns, the thread exits and
	// the kernel delivers Pdeathsig to every child it forked.
	defer close(s.done)
	close(started)
	for req := range s.reqs {
		req.reply <- req.fn()
	}
}

// Close stops the spawner thread. Children it forked that are still alive
// get SIGKILL from their Pdeathsig when the thread exits.
func (s *Spawner) Close() {
	s.closeMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.reqs)
	}
	s.closeMu.Unlock()
	<-s.done
}

// onThread runs fn on the spawner thread.
func (s *Spawner) onThread(fn func() error) error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return errors.New("spawner closed")
	}
	reply := make(chan error, 1)
	s.reqs <- spawnReq{fn: fn, reply: reply}
	s.closeMu.Unlock()
	return <-reply
}

// TrampolineArg is argv[1] of the trampoline: `launch __exec ...`.
const TrampolineArg = "__launch-exec"

// Start forks the worker described by spec. The returned Process is
// registered with the reaper before any status could be reaped.
func (s *Spawner) Start(spec Spec) (*Process, error) {
	if len(spec.Files) != len(spec.FileNames) {
		return nil, fmt.Errorf("start %s: %d files but %d names", spec.Name, len(spec.Files), len(spec.FileNames))
	}
	p := &Process{reaper: s.reaper, done: make(chan struct{}), ready: make(chan struct{}), outDone: make(chan struct{})}
	var cleanup []func() // on failure
	fail := func(err error) (*Process, error) {
		for _, c := range cleanup {
			c()
		}
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}

	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(err)
	}
	defer devnull.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer outW.Close()
	cleanup = append(cleanup, func() { outR.Close() })
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer errW.Close()
	cleanup = append(cleanup, func() { errR.Close() })

	env := cleanEnv(spec.Env)
	files := []uintptr{devnull.Fd(), outW.Fd(), errW.Fd()}
	if n := len(spec.Files); n > 0 {
		for _, f := range spec.Files {
			files = append(files, f.Fd())
		}
		env = append(env, "LISTEN_FDS="+strconv.Itoa(n), "LISTEN_FDNAMES="+strings.Join(spec.FileNames, ":"))
	}

	s.closeMu.Lock()
	s.seq++
	seq := s.seq
	s.closeMu.Unlock()

	var notify *notifyListener
	if spec.Notify {
		notify, err = listenNotify(fmt.Sprintf("%s/n%d.sock", s.runDir, seq), p, spec.Credential)
		if err != nil {
			return fail(err)
		}
		cleanup = append(cleanup, notify.close)
		env = append(env, "NOTIFY_SOCKET="+notify.path)
	}
	var ipc *ipcChannel
	if spec.IPC {
		ipc, err = newIPC(p)
		if err != nil {
			return fail(err)
		}
		cleanup = append(cleanup, ipc.close)
		env = append(env, "NODE_CHANNEL_FD="+strconv.Itoa(len(files)), "NODE_CHANNEL_SERIALIZATION_MODE=json")
		files = append(files, ipc.child.Fd())
	}

	argv := []string{s.exe, TrampolineArg, "--ppid=" + strconv.Itoa(os.Getpid())}
	if c := spec.Credential; c != nil {
		groups := make([]string, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = strconv.FormatUint(uint64(g), 10)
		}
		argv = append(argv, fmt.Sprintf("--cred=%d:%d:%s", c.Uid, c.Gid, strings.Join(groups, ",")))
	}
	if spec.StartNice > 0 {
		base, err := currentNice()
		if err != nil {
			return fail(err)
		}
		p.niced, p.baseNice = true, base
		argv = append(argv, "--nice="+strconv.Itoa(min(19, base+spec.StartNice)))
	}
	argv = append(argv, "--", spec.Path)
	argv = append(argv, spec.Args...)

	if notify != nil {
		p.closer = append(p.closer, notify.close)
	}
	if ipc != nil {
		p.closer = append(p.closer, ipc.close)
	}
	attr := &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	err = s.onThread(func() error {
		s.reaper.mu.Lock()
		defer s.reaper.mu.Unlock()
		pid, err := syscall.ForkExec(s.exe, argv, attr)
		if err != nil {
			return err
		}
		p.PID = pid
		p.Started = time.Now()
		s.reaper.registerLocked(p)
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("fork %s: %w", s.exe, err))
	}
	// From here the process exists; everything below must not fail.
	// The closers registered above run when it is reaped, which may
	// already have happened: start then reads from closed sockets and
	// returns at once.
	if ipc != nil {
		ipc.child.Close()
		ipc.start()
	}
	if notify != nil {
		notify.start()
	}
	spec.Output.follow(spec.Name, outR, false, nil, nil)
	spec.Output.follow(spec.Name, errR, true, p.addTail, func() { close(p.outDone) })
	return p, nil
}

// cleanEnv drops the variables launch sets itself (its own systemd
// hand-off must not leak into workers).
func cleanEnv(env []string) []string {
	out := make([]string, 0, len(env)+6)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LISTEN_") || strings.HasPrefix(k, "WATCHDOG_") ||
			strings.HasPrefix(k, "NODE_CHANNEL_") || k == "NOTIFY_SOCKET" {
			continue
		}
		out = append(out, kv)
	}
	return out
}
