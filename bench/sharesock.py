#!/usr/bin/env python3
"""sharesock.py: the smallest possible "launcher", a baseline for bench/overhead.sh.

    sharesock.py PORT N CMD [ARG...]

Binds 127.0.0.1:PORT once (SO_REUSEADDR, backlog = net.core.somaxconn, as Go's
net.Listen), then starts CMD N times, each with the socket as fd 3,
LISTEN_FDS=1 and LISTEN_PID=<that child's pid> (systemd socket activation,
what launch does). It then only waits: no restarts, no readiness, no logs, no
IPC. On SIGTERM/SIGINT it sends SIGTERM to the children, waits for them and
exits 0. Children get PR_SET_PDEATHSIG=SIGTERM so they do not outlive it.

It exists to separate what launch itself costs from what sharing one
listening socket between N processes costs (accept distribution, wake-ups,
which wrk thread talks to which worker): both run the same app the same way.
"""
import ctypes
import os
import signal
import socket
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    port, n, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    try:
        backlog = int(open("/proc/sys/net/core/somaxconn").read())
    except OSError:
        backlog = socket.SOMAXCONN
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        libc = None

    children = []
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                if libc is not None:
                    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
                if s.fileno() == 3:
                    os.set_inheritable(3, True)  # dup2(3, 3) would keep FD_CLOEXEC
                else:
                    os.dup2(s.fileno(), 3, inheritable=True)
                env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
                env.pop("LISTEN_FDNAMES", None)
                os.execvpe(cmd[0], cmd, env)
            except BaseException as e:  # noqa: BLE001 - report and leave the child
                print(f"sharesock: cannot start {cmd[0]}: {e}", file=sys.stderr)
            os._exit(127)
        children.append(pid)
    s.close()
    print(f"sharesock: {n} x {' '.join(cmd)} on 127.0.0.1:{port}, pids {' '.join(map(str, children))}", flush=True)

    status = 0
    while children:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid in children:
            children.remove(pid)
            code = os.waitstatus_to_exitcode(st)
            if not stopping:
                print(f"sharesock: child {pid} exited ({code}) while not stopping", file=sys.stderr, flush=True)
                status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
