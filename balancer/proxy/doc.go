// Package proxy is the engine behind `balance: proxy`: the master accepts on
// the public address and forwards every HTTP request (protocol http, on
// fasthttp) or every TCP connection (protocol tcp) to one of the workers,
// each of which listens on a private 127.0.0.1 port or unix socket.
//
// It owns the backends' rotation, their keep-alive pools, passive and active
// health, and the accounting that makes Drain exact. The supervisor owns the
// processes: it calls Add when a worker is ready, Drain before it signals the
// worker to stop (so no new request reaches a worker that is stopping), and
// Remove when the process is gone.
//
// Invariant: a request or connection is counted in-flight on exactly one
// backend from the moment that backend is picked until the last byte of its
// response has been written (or the connection has closed), and a backend
// that has left the rotation is never picked again; so the channel Drain
// returns closes exactly when the last piece of work routed to the backend
// has finished.
//
// Client connections are not tied to backends: on a keep-alive connection
// every request picks a backend afresh.
//
// Failures (http): a refused connect marks the backend down for 2 s and the
// request moves to another backend (nothing was sent, so any request may
// move); an idempotent request without a body also moves when the
// connection closes or resets before any response byte. Otherwise the
// client gets 502 (504 when the backend was silent for BackendTimeout, 503
// when no backend is in rotation). A response cut off mid-body reaches the
// client cut off: its headers are already gone.
//
// Limits (Config; defaults): MaxConns 10000 client connections (at the
// limit idle keep-alive ones make room), ReadTimeout 60s (request header;
// then per read of the body), WriteTimeout 60s (per write of the
// response), IdleTimeout 90s, BackendTimeout 60s (per read/write to a
// backend), MaxHeaderBytes 64 KiB (431 past it). Bodies are not limited:
// they stream, and the app decides.
//
// The master's listening socket comes from the balancer registry as an
// *os.File; Listener turns it into a net.Listener (a duplicate fd, so the
// registry keeps its own).
//
// proxy imports only the standard library, fasthttp and golang.org/x/sys.
package proxy
