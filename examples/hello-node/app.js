'use strict';
// hello-node: launch's example Node app (Node >= 18, no dependencies). It does
// what examples/hello does, the Node way.
//
// Sockets: launch binds the addresses in the app file and hands them to each
// worker as fds 3, 4, ... with LISTEN_FDS=n, LISTEN_PID=<worker pid> and
// LISTEN_FDNAMES=a:b (systemd's socket activation); Node serves an inherited
// socket with server.listen({ fd: 3 }). Run by hand, without LISTEN_FDS, it
// binds $HOST:$PORT itself (default 127.0.0.1:8080).
//
// Readiness: Node cannot send sd_notify datagrams, so with `wait_ready: true`
// launch gives the worker a Node IPC channel and waits for
// process.send('ready'), as PM2 does.
//
// Stopping (SIGTERM, SIGINT or the IPC message 'shutdown') follows the
// "drain" recipe, so a rolling reload loses no request: stop listening (this
// process's copy of the socket only; the master and the other workers keep
// it), answer every further request with "Connection: close", close sockets
// still idle 500 ms into the drain, exit 0 once none is left (at most
// DRAIN_MAX_MS, default 1500, after the signal) after lingering
// DRAIN_LINGER_MS (default 300).
//
// Beware: since Node 19, http.Server.close() also closes idle keep-alive
// sockets at once (it calls server.closeIdleConnections()). That races with
// requests clients have already sent on them, which then fail; so this app
// turns closeIdleConnections into a no-op and closes idle sockets itself,
// late.
//
// Routes: / (hello from <pid>), /pid, /slow?ms=N, /crash (exit 1), /env?k=NAME.
// SLOW_INSTANCE=k and SLOW_US=n make instance k spend n µs of CPU on each /.
// Every response carries x-pid and x-version ($VERSION, default "1").

const http = require('http');

const pid = String(process.pid);
const slowNs = process.env.SLOW_INSTANCE !== undefined && process.env.SLOW_INSTANCE === process.env.LAUNCH_INSTANCE
  ? BigInt(Number(process.env.SLOW_US) || 0) * 1000n : 0n;
const version = process.env.VERSION || '1';
const envMs = (name, def) => {
  const n = Number(process.env[name]);
  return process.env[name] && Number.isFinite(n) && n >= 0 ? n : def;
};

let draining = false;
let closeIdle = false; // set 500 ms into the drain
const sockets = new Map(); // every open connection -> its responses in flight

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function handle(req, res) {
  const inflight = sockets.get(req.socket);
  if (inflight) {
    inflight.add(res);
    res.on('close', () => {
      inflight.delete(res);
      if (closeIdle && inflight.size === 0) req.socket.destroy(); // begun before the drain
    });
  }
  res.setHeader('x-pid', pid);
  res.setHeader('x-version', version);
  if (draining) res.setHeader('connection', 'close'); // Node closes the socket after it

  const url = new URL(req.url, 'http://localhost');
  if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n');
  switch (url.pathname) {
    case '/': {
      for (const t0 = process.hrtime.bigint(); process.hrtime.bigint() - t0 < slowNs;) { /* a slow worker */ }
      return reply(res, 200, `hello from ${pid}\n`);
    }
    case '/pid': return reply(res, 200, pid);
    case '/slow': {
      const ms = Math.min(Math.max(Number(url.searchParams.get('ms')) || 0, 0), 30000);
      const t = setTimeout(() => reply(res, 200, `slept ${ms} ms\n`), ms);
      res.on('close', () => clearTimeout(t));
      return;
    }
    case '/crash':
      console.log('crashing on request');
      process.exit(1);
    case '/env': {
      const v = process.env[url.searchParams.get('k')];
      return v === undefined ? reply(res, 404, 'not set\n') : reply(res, 200, v);
    }
    default: return reply(res, 404, 'not found\n');
  }
}

function newServer() {
  const server = http.createServer(handle);
  server.closeIdleConnections = () => {}; // see "Beware" above
  server.on('connection', (socket) => {
    sockets.set(socket, new Set());
    socket.on('close', () => {
      sockets.delete(socket);
      maybeDone();
    });
  });
  server.on('error', (err) => {
    console.error(`server error: ${err.message}`);
    process.exit(1);
  });
  return server;
}

// Sockets passed by launch/systemd, or [] to bind PORT.
function inherited() {
  const n = Number(process.env.LISTEN_FDS) || 0;
  const lp = process.env.LISTEN_PID;
  const names = (process.env.LISTEN_FDNAMES || '').split(':');
  for (const k of ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete process.env[k];
  if (n > 0 && lp && Number(lp) !== process.pid) {
    console.error(`warning: LISTEN_FDS is set but LISTEN_PID=${lp} is not this process (${pid}); ` +
      'is the app started through a wrapper? Binding PORT instead');
    return [];
  }
  return Array.from({ length: n }, (_, i) => ({ fd: 3 + i, name: names[i] }));
}

const servers = [];
let listening = 0;
function onListening(what) {
  console.log(`listening on ${what}`);
  if (++listening === servers.length && typeof process.send === 'function') process.send('ready');
}

const fds = inherited();
for (const { fd, name } of fds) {
  const s = newServer();
  servers.push(s);
  s.listen({ fd }, () => onListening(`fd ${fd}${name ? ` (${name})` : ''}`));
}
if (fds.length === 0) {
  const s = newServer();
  servers.push(s);
  s.listen(Number(process.env.PORT || 8080), process.env.HOST || '127.0.0.1', () => {
    const a = s.address();
    onListening(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
  });
}

let exiting = false;
function maybeDone() {
  if (!draining || sockets.size > 0 || exiting) return;
  exiting = true;
  setTimeout(() => {
    console.log('drained, exiting');
    process.exit(0);
  }, envMs('DRAIN_LINGER_MS', 300));
}

function drain(why) {
  if (draining) {
    console.log(`got ${why} again, exiting now`);
    process.exit(1);
  }
  draining = true;
  console.log(`got ${why}, draining`);
  for (const s of servers) s.close(); // stops listening; keeps open sockets (see above)
  for (const inflight of sockets.values()) {
    for (const res of inflight) if (!res.headersSent) res.setHeader('connection', 'close');
  }
  setTimeout(() => {
    closeIdle = true;
    for (const [socket, inflight] of sockets) if (inflight.size === 0) socket.destroy();
  }, 500);
  const max = envMs('DRAIN_MAX_MS', 1500);
  setTimeout(() => {
    console.log(`${sockets.size} connection(s) still open after ${max} ms, exiting`);
    process.exit(0);
  }, max);
  maybeDone();
}

process.on('SIGTERM', () => drain('SIGTERM'));
process.on('SIGINT', () => drain('SIGINT'));
process.on('message', (m) => { if (m === 'shutdown') drain('shutdown message'); });
