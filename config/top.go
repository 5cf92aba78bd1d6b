package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The top-level settings' defaults and bounds.
const (
	defaultSampleInterval = time.Second
	minSampleInterval     = 100 * time.Millisecond
)

// errMetrics says which metrics values are accepted.
var errMetrics = errors.New(`must be an address "host:port" such as "127.0.0.1:9464", or "" or false for off`)

// topKey reads one of launch's top-level settings into d.top.
func (d *decoder) topKey(p pair) {
	if isNull(p.val) {
		return // not given
	}
	switch p.name {
	case "metrics":
		d.metricsKey = p.key
		addr, hint, err := metricsAddress(p.val)
		if err != nil {
			d.problem(p.key, "", p.name, err.Error()+" (got "+describe(p.val)+")", hint)
			return
		}
		d.top.Metrics = addr
	case "shutdown_delay":
		v, err := nodeDuration(p.val)
		if err != nil {
			d.problem(p.key, "", p.name, err.Error()+" (got "+describe(p.val)+")", "")
			return
		}
		d.top.ShutdownDelay = v
	case "sample_interval":
		v, err := nodeDuration(p.val)
		if err == nil && v < minSampleInterval {
			err = fmt.Errorf("must be at least %s", minSampleInterval)
		}
		if err != nil {
			d.problem(p.key, "", p.name, err.Error()+" (got "+describe(p.val)+")", "")
			return
		}
		d.top.SampleInterval = v
	}
}

// metricsAddress parses metrics: "host:port" (host may be empty for every
// address, or a bracketed IPv6 address), "" or false for off. It returns
// the address normalized ("127.0.0.1:9464").
func metricsAddress(n *yaml.Node) (addr, hint string, err error) {
	if b, err := nodeBool(n); err == nil {
		if b {
			return "", `write an address such as metrics: "127.0.0.1:9464"`, errMetrics
		}
		return "", "", nil
	}
	text, tag, ok := scalar(n)
	if !ok || tag != tagStr {
		hint := ""
		if ok && tag == tagInt {
			hint = `write host and port, such as metrics: "127.0.0.1:` + text + `"`
		}
		return "", hint, errMetrics
	}
	s := strings.TrimSpace(text)
	switch {
	case s == "":
		return "", "", nil
	case strings.Contains(s, "://"):
		return "", "write host:port without a scheme; launch serves /metrics, /healthz and /readyz there", errMetrics
	case strings.HasPrefix(s, unixPrefix):
		return "", "", errors.New("must be a TCP address host:port; unix sockets are not supported for metrics")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return "", `put an IPv6 address in brackets: "[::1]:9464"`, errMetrics
		}
		return "", "", errMetrics
	}
	num, err := strconv.Atoi(port)
	if err != nil || !isInteger(port) || num < 0 || num > 65535 {
		return "", "", errors.New("the port must be a number from 0 to 65535")
	}
	if err := checkHost(host); err != nil {
		hint := ""
		if host == "*" {
			hint = `write ":` + port + `" to listen on every address`
		}
		return "", hint, err
	}
	return net.JoinHostPort(host, strconv.Itoa(num)), "", nil
}

// checkMetrics reports a metrics address that clashes with an app's TCP
// listen address, by the rules of checkAddresses.
func (d *decoder) checkMetrics(apps []*App) {
	if d.top.Metrics == "" {
		return
	}
	host, port, err := net.SplitHostPort(d.top.Metrics)
	if err != nil || port == "0" {
		return
	}
	for _, a := range apps {
		for _, l := range a.Listen {
			if l.Network != TCP {
				continue
			}
			lh, lp, err := net.SplitHostPort(l.Address)
			if err != nil || lp != port {
				continue
			}
			if isWildcard(host) || isWildcard(lh) || strings.EqualFold(host, lh) {
				where := "app " + quote(a.Name)
				if l.Line > 0 {
					where += fmt.Sprintf(" (line %d)", l.Line)
				}
				d.problem(d.metricsKey, "", "metrics", quote(d.top.Metrics)+" clashes with "+quote(l.String())+" in "+where, "give metrics a port of its own")
				return
			}
		}
	}
}
