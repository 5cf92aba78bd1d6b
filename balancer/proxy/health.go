package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Probe checks a backend once: with httpPath "", that a connect to
// network/addr succeeds; otherwise that GET httpPath answers 2xx. ctx
// bounds the whole check. The supervisor uses it for readiness (`ready:
// listen` and `ready: http:<path>`), the proxy for its active checks.
func Probe(ctx context.Context, network, addr, httpPath string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer c.Close()
	if httpPath == "" {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	host := addr
	if network == "unix" {
		host = "localhost"
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: launch-probe\r\nConnection: close\r\n\r\n", httpPath, host); err != nil {
		return fmt.Errorf("probe GET %s on %s: %w", httpPath, addr, err)
	}
	var h fasthttp.ResponseHeader
	if err := h.Read(bufio.NewReaderSize(c, 4096)); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("probe GET %s on %s: %w", httpPath, addr, err)
	}
	if code := h.StatusCode(); code < 200 || code > 299 {
		return fmt.Errorf("probe GET %s on %s: status %d", httpPath, addr, code)
	}
	return nil
}

// startHealth runs b's active checks until b is removed.
func (b *backend) startHealth() {
	ctx, cancel := context.WithCancel(context.Background())
	b.healthStop = cancel
	b.healthDone = make(chan struct{})
	go b.healthLoop(ctx)
}

// waitHealth waits for the checks to stop (after remove).
func (b *backend) waitHealth(ctx context.Context) error {
	if b.healthDone == nil {
		return nil
	}
	select {
	case <-b.healthDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// healthLoop probes b every HealthInterval: out of rotation on a failed
// check, back on a passing one. Draining backends are not checked.
func (b *backend) healthLoop(ctx context.Context) {
	defer close(b.healthDone)
	cfg := &b.p.cfg
	path := cfg.HealthPath
	if cfg.Protocol == ProtocolTCP {
		path = ""
	}
	t := time.NewTicker(cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if backendState(b.state.Load()) != stateActive {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.HealthTimeout)
		err := Probe(pctx, b.network, b.addr, path)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !b.failing.Swap(true) {
				cfg.Logf("proxy: backend %d (%s) out of rotation: %v", b.id, b.addr, err)
			}
		} else if b.failing.Swap(false) {
			b.downUntil.Store(0)
			cfg.Logf("proxy: backend %d (%s) back in rotation: check passes", b.id, b.addr)
		}
	}
}
