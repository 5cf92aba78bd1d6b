package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Proxy mode's defaults (design §3: the proxy sets and documents its own
// limits).
const (
	defaultProxyMaxConns     = 10000
	defaultProxyReadTimeout  = 60 * time.Second
	defaultProxyWriteTimeout = 60 * time.Second
	defaultProxyIdleTimeout  = 90 * time.Second
	defaultProxyMaxHeader    = 64 << 10
	defaultHealthInterval    = 5 * time.Second
	defaultHealthTimeout     = 2 * time.Second

	maxProxyConns = 1000000
	minHeaderSize = 1 << 10
	maxHeaderSize = 64 << 20
	maxHTTPPath   = 1024
)

// proxyOnly are the app keys that work only with balance: proxy, in the
// order they are reported.
var proxyOnly = []string{"protocol", "proxy_to", "sticky", "health_check", "proxy"}

// proxy reads the proxy mode keys into App.Proxy when balance is proxy,
// and refuses them otherwise. It runs after balance and before ready.
func (a *appDecoder) proxy() {
	if a.balanceWritten != BalanceProxy {
		for _, k := range proxyOnly {
			if p, ok := a.keys[k]; ok {
				a.fail(p.key, p.name, "works only with balance: proxy", "add balance: proxy, or remove "+p.name)
			}
		}
		return
	}
	px := &Proxy{
		Protocol:       ProtocolHTTP,
		To:             ProxyToTCP,
		Strategy:       StrategyLeast,
		MaxConns:       defaultProxyMaxConns,
		ReadTimeout:    defaultProxyReadTimeout,
		WriteTimeout:   defaultProxyWriteTimeout,
		IdleTimeout:    defaultProxyIdleTimeout,
		MaxHeaderBytes: defaultProxyMaxHeader,
	}
	if p, ok := a.keys["protocol"]; ok {
		px.Protocol = a.oneOf(p, px.Protocol, ProtocolHTTP, ProtocolTCP)
	}
	a.protocol = px.Protocol
	if p, ok := a.keys["proxy_to"]; ok {
		px.To = a.oneOf(p, px.To, ProxyToTCP, ProxyToUnix)
	}
	if p, ok := a.keys["proxy"]; ok {
		a.proxySettings(p, px)
	}
	if p, ok := a.keys["sticky"]; ok {
		a.sticky(p, px)
	}
	if p, ok := a.keys["health_check"]; ok {
		a.healthCheck(p, px)
	}
	if a.app.Balance == BalanceProxy {
		a.app.Proxy = px
	}
}

// oneOf reads a string key that must be one of values; it returns the
// value read, or def after reporting a problem.
func (a *appDecoder) oneOf(p pair, def string, values ...string) string {
	s, err := nodeString(p.val)
	if err == nil {
		for _, v := range values {
			if s == v {
				return s
			}
		}
	}
	a.fail(p.key, p.name, "must be "+orList(values)+" (got "+describe(p.val)+")", didYouMean(s, values))
	return def
}

// orList formats values as `"a", "b" or "c"`.
func orList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = quote(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// proxySettings reads the proxy: mapping.
func (a *appDecoder) proxySettings(p pair, px *Proxy) {
	pairs, ok := a.mapping(p.val, a.label)
	if !ok {
		a.fail(p.key, "proxy", "must be a mapping of "+strings.Join(proxyKeys, ", ")+" (got "+describe(p.val)+")", "")
		return
	}
	for _, kv := range pairs {
		key := "proxy." + showKey(kv.name)
		if isNull(kv.val) {
			continue // not given, as everywhere else
		}
		switch kv.name {
		case "strategy":
			px.Strategy = a.oneOf(pair{name: key, key: kv.key, val: kv.val}, px.Strategy, StrategyLeast, StrategyRoundRobin)
		case "max_conns":
			n, err := nodeInt(kv.val)
			switch {
			case err != nil:
				a.fail(kv.key, key, err.Error()+" (got "+describe(kv.val)+")", "")
			case n < 1 || n > maxProxyConns:
				a.fail(kv.key, key, fmt.Sprintf("must be from 1 to %d (got %d)", maxProxyConns, n), "")
			default:
				px.MaxConns = int(n)
			}
		case "read_timeout":
			a.subDuration(kv, key, &px.ReadTimeout)
		case "write_timeout":
			a.subDuration(kv, key, &px.WriteTimeout)
		case "idle_timeout":
			a.subDuration(kv, key, &px.IdleTimeout)
		case "max_header_size":
			n, err := nodeMemory(kv.val)
			switch {
			case err != nil:
				a.fail(kv.key, key, err.Error()+" (got "+describe(kv.val)+")", "")
			case n < minHeaderSize || n > maxHeaderSize:
				a.fail(kv.key, key, "must be from 1K to 64M (got "+describe(kv.val)+")", "")
			default:
				px.MaxHeaderBytes = int(n)
			}
		default:
			hint := didYouMean(kv.name, proxyKeys)
			if info, ok := appKeys[kv.name]; ok && info.kind == implemented {
				hint = kv.name + " is an app key: write it beside balance: proxy"
			}
			a.fail(kv.key, key, "unknown key in proxy; it may have "+strings.Join(proxyKeys, ", "), hint)
		}
	}
}

// subDuration reads the duration of a sub-key (proxy.read_timeout) into v.
func (a *appDecoder) subDuration(kv pair, key string, v *time.Duration) bool {
	d, err := nodeDuration(kv.val)
	if err != nil {
		a.fail(kv.key, key, err.Error()+" (got "+describe(kv.val)+")", "")
		return false
	}
	*v = d
	return true
}

// sticky reads sticky: ip, or false / none for off. HTTP only.
func (a *appDecoder) sticky(p pair, px *Proxy) {
	text, tag, _ := scalar(p.val)
	switch {
	case tag == tagBool && strings.EqualFold(text, "false"), tag == tagStr && text == "none":
		return
	case tag == tagStr && text == "ip":
		px.Sticky = true
	case tag == tagBool:
		a.fail(p.key, p.name, `must be "ip" (the client's IP address picks the worker), or false or "none" for off (got `+describe(p.val)+")", "write sticky: ip")
		return
	default:
		a.fail(p.key, p.name, `must be "ip" (the client's IP address picks the worker), or false or "none" for off (got `+describe(p.val)+")", didYouMean(text, []string{"ip", "none"}))
		return
	}
	if px.Protocol != ProtocolHTTP {
		a.fail(p.key, p.name, "needs protocol: http (this app's protocol is "+px.Protocol+")", "remove sticky, or use protocol: http")
	}
}

// healthCheck reads health_check: a path (/healthz), a mapping {path,
// interval, timeout}, or false for none. HTTP only.
func (a *appDecoder) healthCheck(p pair, px *Proxy) {
	if b, err := nodeBool(p.val); err == nil && !b {
		return
	}
	var pathNode, pathKey *yaml.Node
	interval, timeout := defaultHealthInterval, defaultHealthTimeout
	var intervalKey, timeoutKey *yaml.Node
	ok := true
	if pairs, isMap := a.mapping(p.val, a.label); isMap {
		for _, kv := range pairs {
			key := "health_check." + showKey(kv.name)
			if isNull(kv.val) {
				continue
			}
			switch kv.name {
			case "path":
				pathNode, pathKey = kv.val, kv.key
			case "interval":
				intervalKey = kv.key
				if ok = a.subDuration(kv, key, &interval) && ok; ok && interval == 0 {
					a.fail(kv.key, key, "must be more than 0", "")
					ok = false
				}
			case "timeout":
				timeoutKey = kv.key
				if ok = a.subDuration(kv, key, &timeout) && ok; ok && timeout == 0 {
					a.fail(kv.key, key, "must be more than 0", "")
					ok = false
				}
			default:
				a.fail(kv.key, key, "unknown key in health_check; it may have "+strings.Join(healthCheckKeys, ", "), didYouMean(kv.name, healthCheckKeys))
				ok = false
			}
		}
		if pathNode == nil {
			a.fail(p.key, p.name, "missing path", "add path: such as path: /healthz")
			return
		}
	} else {
		pathNode, pathKey = p.val, p.key
	}
	path, err := nodeString(pathNode)
	if err == nil {
		err = checkHTTPPath(path)
	}
	if err != nil {
		key := p.name
		if pathKey != p.key {
			key += ".path"
		}
		hint := ""
		if pathKey == p.key {
			hint = "write a path (health_check: /healthz) or a mapping {path, interval, timeout}"
		}
		a.fail(pathKey, key, err.Error()+" (got "+describe(pathNode)+")", hint)
		return
	}
	if ok && timeout > interval {
		if timeoutKey != nil {
			a.fail(timeoutKey, p.name+".timeout", fmt.Sprintf("%s is longer than the interval %s between checks", timeout, interval), "")
		} else {
			a.fail(intervalKey, p.name+".interval", fmt.Sprintf("%s is shorter than the timeout of one check (%s by default)", interval, timeout), "set timeout: too")
		}
		return
	}
	if px.Protocol != ProtocolHTTP {
		a.fail(p.key, p.name, "needs protocol: http (this app's protocol is "+px.Protocol+")", "remove health_check, or use protocol: http")
		return
	}
	if ok {
		px.HealthPath, px.HealthInterval, px.HealthTimeout = path, interval, timeout
	}
}

// checkHTTPPath checks a path for ready: http:/path and health_check: it
// starts with '/', and holds no blanks or control characters.
func checkHTTPPath(path string) error {
	switch {
	case !strings.HasPrefix(path, "/"):
		return errors.New(`must be a URL path starting with "/"`)
	case len(path) > maxHTTPPath:
		return fmt.Errorf("must be at most %d bytes", maxHTTPPath)
	case strings.IndexFunc(path, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("must not contain blanks or control characters")
	}
	return nil
}
