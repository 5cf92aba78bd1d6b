package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// longBody is the size past which a response body's write deadline moves
// with progress instead of covering the whole body at once (an upload's
// read deadline always moves).
const longBody = 1 << 20

// serveHTTP forwards one request. The backend is picked per request; the
// request and response bodies stream through (neither is buffered).
//
// Retries: a request goes to at most maxAttempts backends. It moves to
// the next one when the connect failed (nothing was sent, so any request
// may move), or, for an idempotent request without a body (GET, HEAD,
// OPTIONS, TRACE, PUT, DELETE), when the connection closed or reset
// before any byte of a response came back. Every other failure is
// answered: 502 (backend failed), 504 (backend silent for
// BackendTimeout), 503 (no backend in rotation). fasthttp's own retries
// are off (see newBackend).
func (p *Proxy) serveHTTP(ctx *fasthttp.RequestCtx) {
	req := &ctx.Request
	h := &req.Header
	if h.ConnectionUpgrade() && len(h.Peek("Upgrade")) > 0 && !hasBody(h) {
		p.serveUpgrade(ctx)
		return
	}
	var hash uint64
	if p.cfg.Sticky {
		hash = clientHash(ctx)
	}
	stripHopByHop(h)
	h.ResetConnectionClose() // the client's connection, not the backend's
	if !h.IsHTTP11() {
		h.SetProtocol("HTTP/1.1") // keep the backend connection alive for HTTP/1.0 clients too
	}
	if len(h.Host()) == 0 {
		h.SetHost(ctx.LocalAddr().String()) // HTTP/1.0 without Host
	}
	req.UseHostHeader = true // the client's Host goes on as it came
	setForwarded(ctx)
	withBody := hasBody(h)
	retryable := !withBody && idempotent(h)
	var up *upload
	if withBody && req.IsBodyStream() {
		up = &upload{r: req.BodyStream(), ctx: ctx, timeout: p.cfg.ReadTimeout}
		req.SetBodyStream(up, h.ContentLength())
	}

	resp := fasthttp.AcquireResponse()
	var tried [maxAttempts]*backend
	var err error
	var kind failure
	for n := 0; ; {
		b := p.pick(hash, tried[:n])
		if b == nil && n > 0 && kind == failNoResponse {
			b = p.pick(hash, nil) // a stale keep-alive connection: the same backend may do
		}
		if b == nil {
			fasthttp.ReleaseResponse(resp)
			if n == 0 {
				ctx.Error("no backend available\n", fasthttp.StatusServiceUnavailable)
				return
			}
			p.fail(ctx, kind, up)
			return
		}
		tried[n] = b
		n++
		err = b.hc.Do(req, resp)
		if err == nil {
			p.respond(ctx, b, resp)
			return
		}
		b.release()
		kind = classify(err, up)
		if kind != failClient {
			b.failed.Add(1)
		}
		var de *dialError
		switch {
		case errors.As(err, &de): // not ErrNoFreeConns: a full pool is no sign of ill health
			b.markDown(err)
		case kind == failNoResponse:
			// One pooled connection found dead: after a crash they all
			// are, and a POST must not be the next to find out.
			b.hc.CloseIdleConnections()
		}
		if n < maxAttempts && (kind == failConnect || kind == failNoResponse && retryable) {
			b.logFailure(h, err, "trying another backend")
			continue
		}
		if kind != failClient {
			b.logFailure(h, err, "answered "+strconv.Itoa(kind.status()))
		}
		fasthttp.ReleaseResponse(resp)
		p.fail(ctx, kind, up)
		return
	}
}

// respond hands the backend's response to the client; the body streams
// from the backend connection as the server writes it, and b stays in
// flight until it is written (respStream.CloseWithError).
func (p *Proxy) respond(ctx *fasthttp.RequestCtx, b *backend, resp *fasthttp.Response) {
	b.served.Add(1)
	if resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
		// Not asked for (upgrades take serveUpgrade): the connection is
		// in an unknown protocol now, and fasthttp pooled it.
		fasthttp.ReleaseResponse(resp)
		b.hc.CloseIdleConnections()
		b.release()
		ctx.Error("bad gateway: unexpected 101 from backend\n", fasthttp.StatusBadGateway)
		return
	}
	stripHopByHop(&resp.Header)
	out := &ctx.Response
	resp.Header.CopyTo(&out.Header)
	out.Header.SetNoDefaultContentType(true)
	out.Header.ResetConnectionClose() // the backend's connection, not the client's
	body := resp.BodyStream()
	if body == nil { // HEAD, 204, 304
		fasthttp.ReleaseResponse(resp)
		b.release()
		return
	}
	cl := resp.Header.ContentLength()
	rs := &respStream{r: body, resp: resp, b: b}
	if len(resp.Header.PeekTrailerKeys()) > 0 {
		rs.trailers = &out.Header
	}
	out.SetBodyStream(rs, cl)
	if cl < 0 {
		out.ImmediateHeaderFlush = true // event streams: headers before the first event
	}
	if cl < 0 || cl > longBody {
		rs.ctx, rs.timeout = ctx, p.cfg.WriteTimeout
		rs.wdl = time.Now().Add(rs.timeout)
		ctx.SetWriteDeadline(rs.wdl)
	}
}

// fail answers a request no backend could serve.
func (p *Proxy) fail(ctx *fasthttp.RequestCtx, kind failure, up *upload) {
	switch kind {
	case failClient:
		ctx.SetConnectionClose()
		if isTimeout(up.err) {
			ctx.Error("request body: read timed out\n", fasthttp.StatusRequestTimeout)
		} else {
			ctx.Error("request body: read failed\n", fasthttp.StatusBadRequest)
		}
	case failTimeout:
		ctx.Error("gateway timeout\n", fasthttp.StatusGatewayTimeout)
	default:
		ctx.Error("bad gateway\n", fasthttp.StatusBadGateway)
	}
}

// status is the answer to a request that failed this way.
func (f failure) status() int {
	switch f {
	case failClient:
		return fasthttp.StatusBadRequest
	case failTimeout:
		return fasthttp.StatusGatewayTimeout
	}
	return fasthttp.StatusBadGateway
}

// logFailure logs a failed attempt, at most once a second per backend (a
// dead backend fails every request routed to it until it is marked down).
func (b *backend) logFailure(h *fasthttp.RequestHeader, err error, outcome string) {
	now := time.Now().UnixNano()
	last := b.lastLog.Load()
	if now-last < int64(time.Second) || !b.lastLog.CompareAndSwap(last, now) {
		return
	}
	if errors.Is(err, fasthttp.ErrConnectionClosed) { // its own text blames the backend's headers
		err = errors.New("connection closed before the first response byte")
	}
	b.p.cfg.Logf("proxy: backend %d (%s): %s %s: %v; %s", b.id, b.addr, h.Method(), h.RequestURI(), err, outcome)
}

// failure classifies an error of HostClient.Do.
type failure int

const (
	failOther      failure = iota
	failConnect            // nothing was sent: any request may move on
	failNoResponse         // closed or reset before a response byte came back
	failTimeout            // the backend was silent for BackendTimeout
	failClient             // reading the client's body failed: not the backend's fault
)

func classify(err error, up *upload) failure {
	var de *dialError
	switch {
	case up != nil && up.err != nil:
		return failClient
	case errors.As(err, &de), errors.Is(err, fasthttp.ErrNoFreeConns):
		return failConnect
	case errors.Is(err, fasthttp.ErrTimeout), isTimeout(err):
		return failTimeout
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed):
		return failNoResponse
	}
	return failOther
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hasBody: a Content-Length above 0, or chunked.
func hasBody(h *fasthttp.RequestHeader) bool {
	cl := h.ContentLength()
	return cl > 0 || cl == -1
}

// idempotent per RFC 9110 §9.2.2.
func idempotent(h *fasthttp.RequestHeader) bool {
	return h.IsGet() || h.IsHead() || h.IsOptions() || h.IsPut() || h.IsDelete() || h.IsTrace()
}

// headerFields is what RequestHeader and ResponseHeader share.
type headerFields interface {
	Peek(key string) []byte
	Del(key string)
}

// hopByHop are the fields that describe one connection (RFC 9110 §7.6.1).
// Transfer-Encoding and Trailer are framing: fasthttp consumes them when
// it reads a message and writes its own when it sends one (a body is
// re-framed on each side, so a client cannot smuggle a second request
// past the proxy). Trailer fields themselves are end-to-end and pass both
// ways.
var hopByHop = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade"}

// stripHopByHop removes the hop-by-hop fields and every field Connection
// names.
func stripHopByHop(h headerFields) {
	if conn := h.Peek("Connection"); len(conn) > 0 {
		var names [8][]byte
		n := 0
		for tok := range bytes.SplitSeq(conn, []byte{','}) {
			tok = bytes.TrimSpace(tok)
			if len(tok) > 0 && n < len(names) {
				names[n] = append([]byte(nil), tok...)
				n++
			}
		}
		for _, name := range names[:n] {
			h.Del(string(name))
		}
	}
	for _, k := range hopByHop {
		if len(h.Peek(k)) > 0 {
			h.Del(k)
		}
	}
}

// setForwarded appends the client's address to X-Forwarded-For and sets
// X-Forwarded-Proto (the proxy speaks plain http).
func setForwarded(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		var buf [96]byte
		v := buf[:0]
		if prior := h.Peek("X-Forwarded-For"); len(prior) > 0 {
			v = append(append(v, prior...), ", "...)
		}
		v = a.AddrPort().Addr().Unmap().AppendTo(v)
		h.SetBytesV("X-Forwarded-For", v)
	}
	h.Set("X-Forwarded-Proto", "http")
}

// clientHash is the sticky key: the client's IP (never 0).
func clientHash(ctx *fasthttp.RequestCtx) uint64 {
	var x uint64 = 1469598103934665603
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		for _, c := range a.AddrPort().Addr().Unmap().As16() {
			x = (x ^ uint64(c)) * 1099511628211
		}
	}
	return mix(x) | 1
}

// respStream is a response body on its way from a backend to a client.
type respStream struct {
	r    io.Reader // the backend's body: a fasthttp.ReadCloserWithError
	resp *fasthttp.Response
	b    *backend
	// ctx, if set, gets its write deadline moved as the body flows, so a
	// long body is bounded per write (WriteTimeout) rather than in total.
	ctx     *fasthttp.RequestCtx
	timeout time.Duration
	wdl     time.Time
	// trailers, if set, is the client's response header: the backend's
	// trailer fields are copied into it when the body ends (the server
	// writes them right after the last chunk).
	trailers *fasthttp.ResponseHeader
}

func (s *respStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF && s.trailers != nil {
		for _, k := range s.resp.Header.PeekTrailerKeys() {
			for _, v := range s.resp.Header.PeekAll(string(k)) {
				s.trailers.AddBytesKV(k, v)
			}
		}
		s.trailers = nil
	} else if err != nil && err != io.EOF {
		s.b.failed.Add(1) // cut off mid-body: the client sees a truncated response
	}
	if s.ctx != nil && n > 0 {
		if now := time.Now(); s.wdl.Sub(now) < s.timeout*3/4 {
			s.wdl = now.Add(s.timeout)
			s.ctx.SetWriteDeadline(s.wdl)
		}
	}
	return n, err
}

// CloseWithError is called by the server once the body is written (or
// abandoned: err != nil); the backend connection goes back to its pool
// only if the body was read to its end.
func (s *respStream) CloseWithError(err error) error {
	if c, ok := s.r.(fasthttp.ReadCloserWithError); ok {
		c.CloseWithError(err)
	}
	fasthttp.ReleaseResponse(s.resp)
	s.b.release()
	return nil
}

// upload is a request body on its way from a client to a backend. Each
// read may wait ReadTimeout, so an upload of any size works at any pace
// that keeps moving. A failed read is remembered: it is the client's
// fault, not the backend's.
type upload struct {
	r       io.Reader
	ctx     *fasthttp.RequestCtx
	timeout time.Duration
	rdl     time.Time
	err     error
}

func (u *upload) Read(p []byte) (int, error) {
	if now := time.Now(); u.rdl.Sub(now) < u.timeout*3/4 {
		u.rdl = now.Add(u.timeout)
		u.ctx.SetReadDeadline(u.rdl)
	}
	n, err := u.r.Read(p)
	if err != nil && err != io.EOF {
		u.err = err
	}
	return n, err
}
