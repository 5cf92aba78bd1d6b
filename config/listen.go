package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxUnixPath is the longest socket path Linux accepts (sun_path holds 108
// bytes with the terminating NUL).
const maxUnixPath = 107

// maxFDName is the longest LISTEN_FDNAMES entry systemd accepts.
const maxFDName = 255

// unixPrefix marks a unix socket address: "unix:/run/app.sock".
const unixPrefix = "unix:"

// errAddress says which addresses are accepted.
var errAddress = errors.New(`must be "host:port", ":port", a port number, or "unix:/path/to.sock"`)

// listen reads listen: one address or a list; each a string, a port
// number, or a mapping {address, name, mode}.
func (a *appDecoder) listen() {
	p, ok := a.keys["listen"]
	if !ok || isNull(p.val) {
		return
	}
	items, isList := a.items(p.val)
	if !isList {
		items = []*yaml.Node{p.val}
	}
	for i, it := range items {
		key := "listen"
		if isList {
			key = fmt.Sprintf("listen[%d]", i)
		}
		if l, ok := a.listenItem(p, it, key); ok {
			a.app.Listen = append(a.app.Listen, l)
		}
	}
	if len(a.app.Listen) > 0 && a.app.ExecMode == ExecFork {
		a.fail(p.key, "listen", "fork mode workers get no sockets", "remove listen or use exec_mode: cluster")
	}
}

// listenItem reads one listen entry.
func (a *appDecoder) listenItem(p pair, it *yaml.Node, key string) (Listen, bool) {
	at := it
	if at == p.val {
		at = p.key // a lone value: point at the key
	}
	addrNode, nameNode, modeNode := it, (*yaml.Node)(nil), (*yaml.Node)(nil)
	if pairs, isMap := a.mapping(it, a.label); isMap {
		addrNode = nil
		for _, kv := range pairs {
			switch kv.name {
			case "address":
				addrNode = kv.val
			case "name":
				nameNode = kv.val
			case "mode":
				modeNode = kv.val
			default:
				a.fail(kv.key, key+"."+showKey(kv.name), "unknown key in a listen entry; it may have address, name and mode", didYouMean(kv.name, listenKeys))
				return Listen{}, false
			}
		}
		if addrNode == nil {
			a.fail(at, key, "missing address", `add address: such as "127.0.0.1:8080" or "unix:/run/app.sock"`)
			return Listen{}, false
		}
		key += ".address"
	}
	l, hint, err := a.address(addrNode)
	if err != nil {
		a.fail(at, key, err.Error()+" (got "+describe(addrNode)+")", hint)
		return Listen{}, false
	}
	l.Line = at.Line

	l.Name = a.app.Name
	if nameNode != nil {
		s, err := nodeString(nameNode)
		if err != nil {
			a.fail(nameNode, strings.TrimSuffix(key, ".address")+".name", "must be a string (got "+describe(nameNode)+")", "")
			return Listen{}, false
		}
		l.Name = s
	}
	if err := checkFDName(l.Name); err != nil {
		if nameNode != nil {
			a.fail(nameNode, strings.TrimSuffix(key, ".address")+".name", err.Error()+" (got "+quote(l.Name)+")", "")
		} else {
			a.fail(at, key, "the socket's name defaults to the app name, which "+err.Error(), "give the entry a name: {address: ..., name: web}")
		}
		return Listen{}, false
	}

	if modeNode != nil {
		modeKey := strings.TrimSuffix(key, ".address") + ".mode"
		if l.Network != Unix {
			a.fail(modeNode, modeKey, "applies only to unix sockets", "")
			return Listen{}, false
		}
		text, _, ok := scalar(modeNode)
		mode, err := parseMode(text)
		if !ok || err != nil {
			a.fail(modeNode, modeKey, errMode(err)+" (got "+describe(modeNode)+")", "")
			return Listen{}, false
		}
		l.Mode = os.FileMode(mode)
	}
	return l, true
}

// errMode is parseMode's message, also for a value that is not a scalar.
func errMode(err error) string {
	if err == nil {
		_, err = parseMode("bad")
	}
	return err.Error()
}

// checkFDName checks a LISTEN_FDNAMES entry: 1 to 255 printable ASCII
// characters, no ':' (it separates the entries).
func checkFDName(name string) error {
	if name == "" || len(name) > maxFDName {
		return fmt.Errorf("must be 1 to %d characters for LISTEN_FDNAMES", maxFDName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == ':' {
			return errors.New("must be printable ASCII without ':' for LISTEN_FDNAMES")
		}
	}
	return nil
}

// address parses one listen address. A hint, when not empty, says how to
// fix the address.
func (a *appDecoder) address(n *yaml.Node) (l Listen, hint string, err error) {
	text, tag, ok := scalar(n)
	if !ok || (tag != tagStr && tag != tagInt) {
		return l, "", errAddress
	}
	if tag == tagInt {
		port, err := parseYAMLInt(text)
		if err != nil || port < 0 || port > 65535 {
			return l, "", errors.New("a port must be from 0 to 65535")
		}
		return Listen{Network: TCP, Address: ":" + strconv.FormatInt(port, 10)}, "", nil
	}
	s := strings.TrimSpace(text)
	switch {
	case s == "":
		return l, "", errors.New("must not be empty")
	case strings.IndexByte(s, 0) >= 0:
		return l, "", errors.New("must not contain a NUL byte")
	case strings.HasPrefix(s, unixPrefix):
		return a.unixAddress(strings.TrimPrefix(s, unixPrefix))
	case isInteger(s):
		s = ":" + s
	case strings.Contains(s, "://"):
		return l, "write host:port without a scheme, or unix:/path", errAddress
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return l, `put an IPv6 address in brackets: "[::1]:8080"`, errAddress
		}
		return l, "", errAddress
	}
	num, err := strconv.Atoi(port)
	if err != nil || !isInteger(port) || num < 0 || num > 65535 {
		return l, "", errors.New("the port must be a number from 0 to 65535")
	}
	port = strconv.Itoa(num)
	if err := checkHost(host); err != nil {
		hint := ""
		if host == "*" {
			hint = `write ":` + port + `" to listen on every address`
		}
		return l, hint, err
	}
	return Listen{Network: TCP, Address: net.JoinHostPort(host, port)}, "", nil
}

// checkHost accepts an empty host (every address), an IP address (with a
// zone for IPv6), or a host name.
func checkHost(host string) error {
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	bad := errors.New("the host must be an IP address or a host name")
	if len(host) > 253 {
		return bad
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return bad
			}
		}
	}
	return nil
}

// unixAddress parses the path of "unix:PATH", relative to the app's
// directory, at most maxUnixPath bytes once resolved.
func (a *appDecoder) unixAddress(path string) (Listen, string, error) {
	if path == "" {
		return Listen{}, "", errors.New("a unix socket needs a path after unix:")
	}
	path = a.absolute(path)
	if len(path) > maxUnixPath {
		return Listen{}, "use a shorter path, such as one under /run or /tmp",
			fmt.Errorf("the socket path %s is %d bytes; the limit is %d", quote(path), len(path), maxUnixPath)
	}
	return Listen{Network: Unix, Address: path, Mode: defaultSocketMode}, "", nil
}

// balance reads balance: shared (the default), reuseport or proxy.
// reuseport needs TCP addresses; proxy needs a listen address and
// exec_mode: cluster.
func (a *appDecoder) balance() {
	p, ok := a.keys["balance"]
	if !ok {
		return
	}
	s, err := nodeString(p.val)
	if err != nil {
		a.bad(p, err, "")
		return
	}
	switch b := Balance(s); b {
	case BalanceShared:
		a.balanceWritten = b
	case BalanceReusePort:
		a.balanceWritten = b
		for _, l := range a.app.Listen {
			if l.Network == Unix {
				a.fail(p.key, "balance", "reuseport does not work with unix sockets (listen has "+quote(l.String())+")", "use balance: shared")
				return
			}
		}
		a.app.Balance = b
	case BalanceProxy:
		a.balanceWritten = b
		if a.app.ExecMode == ExecFork {
			a.fail(p.key, "balance", "proxy works only with exec_mode: cluster (fork mode runs one process on its own)", "remove exec_mode: fork")
			return
		}
		if l, given := a.keys["listen"]; !given || (len(a.app.Listen) == 0 && isEmptyList(l.val)) {
			a.fail(p.key, "balance", "proxy needs a listen address: the master accepts there and forwards to the workers", "add listen:, such as listen: 8080")
			return
		}
		a.app.Balance = b
	default:
		a.fail(p.key, "balance", `must be "shared", "reuseport" or "proxy" (got `+quote(s)+")", didYouMean(s, []string{"shared", "reuseport", "proxy"}))
	}
}

// ready reads ready, or picks the default: with wait_ready, ipc for a node
// app and notify otherwise; without, in proxy mode, listen (the worker's
// private port accepts); else a delay of min(1s, min_uptime), and
// never more than half of listen_timeout (so a short listen_timeout alone
// is not an error about a delay the user never wrote).
func (a *appDecoder) ready() {
	app := a.app
	defaultDelay := min(defaultReadyDelay, app.MinUptime)
	if app.ListenTimeout > 0 {
		defaultDelay = min(defaultDelay, app.ListenTimeout/2)
	}
	p, ok := a.keys["ready"]
	switch {
	case !ok && !app.WaitReady && a.balanceWritten == BalanceProxy:
		app.Ready = Ready{Kind: ReadyListen}
	case !ok && app.WaitReady && a.isNode():
		app.Ready = Ready{Kind: ReadyIPC}
	case !ok && app.WaitReady:
		app.Ready = Ready{Kind: ReadyNotify}
	case !ok:
		app.Ready = Ready{Kind: ReadyDelay, Delay: defaultDelay}
	default:
		a.readyValue(p, defaultDelay)
	}
	if app.Ready.Kind == ReadyDelay && app.Ready.Delay >= app.ListenTimeout {
		at, key, why := a.node, "ready", fmt.Sprintf("the ready delay %s (the default, min(1s, min_uptime))", app.Ready.Delay)
		if ok {
			at, why = p.key, fmt.Sprintf("the ready delay %s", app.Ready.Delay)
		}
		if _, given := a.keys["listen_timeout"]; given {
			at, key = a.keys["listen_timeout"].key, "listen_timeout"
		}
		a.fail(at, key, fmt.Sprintf("%s is not shorter than listen_timeout %s, so no worker could ever be ready", why, app.ListenTimeout),
			"shorten the delay (ready: delay:500ms) or raise listen_timeout")
	}
}

// readyValue parses a written ready value.
func (a *appDecoder) readyValue(p pair, defaultDelay time.Duration) {
	s, err := nodeString(p.val)
	if err != nil {
		a.bad(p, err, "")
		return
	}
	needsProxy := func(kind string) bool {
		if a.balanceWritten == BalanceProxy {
			return true
		}
		a.fail(p.key, "ready", kind+" works only with balance: proxy", "use notify, ipc or delay")
		return false
	}
	switch {
	case s == "notify":
		a.app.Ready = Ready{Kind: ReadyNotify}
	case s == "ipc":
		a.app.Ready = Ready{Kind: ReadyIPC}
	case s == "delay":
		a.app.Ready = Ready{Kind: ReadyDelay, Delay: defaultDelay}
	case strings.HasPrefix(s, "delay:"):
		d, err := parseDuration(strings.TrimPrefix(s, "delay:"))
		if err != nil {
			a.fail(p.key, "ready", "delay: the duration "+err.Error()+" (got "+quote(s)+")", "")
			return
		}
		a.app.Ready = Ready{Kind: ReadyDelay, Delay: d}
	case s == "listen":
		if needsProxy("ready: listen") {
			a.app.Ready = Ready{Kind: ReadyListen}
		}
	case s == "http" || strings.HasPrefix(s, "http:"):
		path := strings.TrimPrefix(strings.TrimPrefix(s, "http"), ":")
		if !strings.HasPrefix(path, "/") {
			a.fail(p.key, "ready", "http needs a path: http:/healthz (got "+quote(s)+")", "")
			return
		}
		if err := checkHTTPPath(path); err != nil {
			a.fail(p.key, "ready", "http: the path "+err.Error()+" (got "+quote(s)+")", "")
			return
		}
		if !needsProxy("ready: http") {
			return
		}
		if a.protocol == ProtocolTCP {
			a.fail(p.key, "ready", "http needs protocol: http (this app's protocol is tcp)", "use ready: listen, notify, ipc or delay")
			return
		}
		a.app.Ready = Ready{Kind: ReadyHTTP, Path: path}
	default:
		a.fail(p.key, "ready", `must be notify, ipc, delay, delay:<duration>, listen or http:/path (got `+quote(s)+")",
			didYouMean(s, []string{"notify", "ipc", "delay", "listen"}))
	}
}

// isNode reports whether the app runs under node: its interpreter is node,
// or its script is JavaScript.
func (a *appDecoder) isNode() bool {
	if base := filepath.Base(a.app.Interpreter); a.app.Interpreter != "" {
		return base == "node" || base == "nodejs" || strings.HasPrefix(base, "node")
	}
	switch strings.ToLower(filepath.Ext(a.app.Script)) {
	case ".js", ".mjs", ".cjs":
		return true
	}
	return false
}

// listenUse is one listen address of one app, for the cross-app check.
type listenUse struct {
	app      *appDecoder
	l        Listen
	host     string // TCP only
	wildcard bool   // host means every address
}

// checkAddresses reports an address listened on twice, in one app or two.
// TCP addresses clash when their ports match and their hosts match or one
// is a wildcard (Go binds 0.0.0.0 and :: dual-stack); port 0 never clashes.
// Unix addresses clash when their paths match.
func (d *decoder) checkAddresses(decs []*appDecoder) {
	byKey := map[string][]listenUse{} // by port, or by path for unix
	for _, a := range decs {
		for _, l := range a.app.Listen {
			if d.full() {
				return
			}
			use, key := listenUse{app: a, l: l}, unixPrefix+l.Address
			if l.Network == TCP {
				host, port, err := net.SplitHostPort(l.Address)
				if err != nil || port == "0" {
					continue
				}
				use.host, use.wildcard, key = host, isWildcard(host), port
			}
			for _, prev := range byKey[key] {
				if l.Network == TCP && !prev.wildcard && !use.wildcard && !strings.EqualFold(prev.host, use.host) {
					continue
				}
				where := "app " + quote(prev.app.app.Name)
				if prev.app == a {
					where = "this app"
				}
				if prev.l.Line > 0 {
					where += fmt.Sprintf(" (line %d)", prev.l.Line)
				}
				d.problem(&yaml.Node{Line: l.Line}, a.label, "listen", quote(l.String())+" clashes with "+quote(prev.l.String())+" in "+where, "each address may be listened on once")
				break
			}
			byKey[key] = append(byKey[key], use)
		}
	}
}

// isWildcard reports whether host means every address.
func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}
