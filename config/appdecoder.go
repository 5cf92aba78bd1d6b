package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// PM2's defaults, and ours, for keys an app does not set.
const (
	defaultInstances     = 1
	defaultMaxRestarts   = 16
	defaultMinUptime     = 1000 * time.Millisecond
	defaultKillTimeout   = 1600 * time.Millisecond
	defaultListenTimeout = 3000 * time.Millisecond
	defaultReadyDelay    = time.Second
	defaultStopSignal    = syscall.SIGTERM
	defaultSocketMode    = 0o660
)

// maxInstances bounds an explicit instance count: a larger one is almost
// certainly a typo, and would fork that many processes.
const maxInstances = 10000

// appDecoder walks one app entry.
type appDecoder struct {
	*decoder
	// label names the app in messages: `app "web"`, or `apps[2]` until the
	// name is known.
	label string
	app   *App
	// node is the app's mapping, for problems that belong to no key.
	node *yaml.Node
	// keys holds the implemented keys given, by canonical name (an alias
	// such as node_args is stored under interpreter_args).
	keys map[string]pair
	// others are the keys classify left for report.
	others []pair
	// envSections are the env_<NAME> keys, in file order.
	envSections []pair
	// nameNode is where the name is (or where the app is, for a default name).
	nameNode      *yaml.Node
	nameDefaulted bool
	// scriptRest are the elements after the first of a script list.
	scriptRest []string
	// balanceWritten is the balance mode as written, before downgrades.
	balanceWritten Balance
	// protocol is the proxy protocol as read (or its default), for ready.
	protocol string
	// root says the app is the whole file (written without apps:).
	root bool
}

// fail records a problem in this app.
func (a *appDecoder) fail(n *yaml.Node, key, msg, hint string) {
	a.problem(n, a.label, key, msg, hint)
}

// bad records a value that did not parse: "<why> (got <what was written>)".
func (a *appDecoder) bad(p pair, why error, hint string) {
	a.fail(p.key, p.name, why.Error()+" (got "+describe(p.val)+")", hint)
}

// app walks one app entry into an App with every default applied.
func (d *decoder) app(n *yaml.Node, pairs []pair, scope string, root bool) *appDecoder {
	a := &appDecoder{
		decoder: d,
		label:   scope,
		root:    root,
		node:    n,
		keys:    map[string]pair{},
		app: &App{
			Line:          n.Line,
			Instances:     defaultInstances,
			ExecMode:      ExecCluster,
			Env:           map[string]string{},
			Autorestart:   true,
			MaxRestarts:   defaultMaxRestarts,
			MinUptime:     defaultMinUptime,
			KillTimeout:   defaultKillTimeout,
			ListenTimeout: defaultListenTimeout,
			Balance:       BalanceShared,
			StopSignal:    defaultStopSignal,
			LogMaxSize:    defaultLogMaxSize,
			LogMaxFiles:   defaultLogMaxFiles,
		},
	}
	a.classify(pairs)
	a.nameAndScript()
	a.report()
	a.workDir()
	a.command()
	a.instances()
	a.execMode()
	a.env()
	a.restartPolicy()
	a.credential()
	a.listen()
	a.balance()
	a.proxy()
	a.ready()
	a.stopSignal()
	a.logs()
	return a
}

// classify sorts the app's keys: implemented ones (and aliases) into
// a.keys under their canonical name, env sections aside, and the rest into
// a.others for report, which runs once the app's name is known.
func (a *appDecoder) classify(pairs []pair) {
	for _, p := range pairs {
		if isEnvSection(p.name) {
			a.envSections = append(a.envSections, p)
			continue
		}
		info, known := appKeys[p.name]
		if known && isNull(p.val) {
			continue // a key left empty is a key not given, as in PM2
		}
		if !known || (info.kind != implemented && info.kind != alias) {
			a.others = append(a.others, p)
			continue
		}
		canonical := p.name
		if info.kind == alias {
			canonical = info.canonical
		}
		if _, dup := a.keys[canonical]; dup {
			a.others = append(a.others, p)
			continue
		}
		a.keys[canonical] = p
	}
}

// report warns about the keys launch ignores and reports unknown keys and
// a key given under two spellings.
func (a *appDecoder) report() {
	for _, p := range a.others {
		if a.full() {
			return
		}
		info, known := appKeys[p.name]
		switch {
		case !known:
			if _, top := topKeys[p.name]; top {
				hint := "move it out of the app, to the top of the file"
				if a.root {
					hint = "list the app under apps: and write " + p.name + " at the top of the file, beside apps"
				}
				a.fail(p.key, p.name, "is a top-level key, not an app key", hint)
				continue
			}
			hint := didYouMean(p.name, appKeyNames)
			if hint == "" {
				hint = "app keys are PM2's (name, script, args, instances, env, ...) and launch's listen, balance, ready, stop_signal"
			}
			a.fail(p.key, showKey(p.name), "unknown app key", hint)
		case info.kind == later:
			a.warn(p.key, a.label, p.name, p.name+" is not yet supported; ignored"+note(info))
		case info.kind == pm2Ignored:
			a.warn(p.key, a.label, p.name, p.name+" is a PM2 key launch does not implement; ignored"+note(info))
		default: // an implemented key under a second spelling
			canonical := p.name
			if info.kind == alias {
				canonical = info.canonical
			}
			prev := a.keys[canonical]
			a.fail(p.key, p.name, "means the same as "+prev.name+atLine(" (line %d)", prev.key)+"; keep one", "")
		}
	}
}

// note formats a key's note for a warning.
func note(info keyInfo) string {
	if info.note == "" {
		return ""
	}
	return " (" + info.note + ")"
}

// nameAndScript reads script and name first: the name labels every later
// message, and defaults to the script's base name.
func (a *appDecoder) nameAndScript() {
	script := ""
	if p, ok := a.keys["script"]; ok {
		script = a.script(p)
	} else {
		defer a.fail(a.node, "", "missing script", "add script: with the program to run, such as script: ./server")
	}
	a.nameNode = a.node
	if p, ok := a.keys["name"]; ok {
		a.nameNode = p.key
		name, err := nodeString(p.val)
		if err == nil {
			err = checkName(name)
		}
		if err != nil {
			a.bad(p, err, "")
		} else {
			a.app.Name = name
		}
	} else if script != "" {
		name := filepath.Base(script)
		if stem := strings.TrimSuffix(name, filepath.Ext(name)); stem != "" {
			name = stem
		}
		if err := checkName(name); err != nil {
			a.fail(a.node, "name", "the name defaults to the script's base name, which "+err.Error()+" (got "+quote(name)+")", "set name:")
		} else {
			a.app.Name = name
			a.nameDefaulted = true
		}
	}
	if a.app.Name != "" {
		a.label = "app " + quote(a.app.Name)
	}
}

// checkName checks an app name: not blank, at most 255 bytes, no control
// characters.
func checkName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("must not be empty")
	case len(name) > 255:
		return errors.New("must be at most 255 bytes")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errors.New("must not contain control characters")
	}
	return nil
}

// script reads script: a path or command, or a list whose first element is
// the program and the rest its first arguments. It fills App.Script and
// a.scriptRest, and returns the script.
func (a *appDecoder) script(p pair) string {
	items, single, err := a.stringList(p.val)
	if err != nil {
		a.bad(p, err, "")
		return ""
	}
	if len(items) == 0 {
		a.fail(p.key, "script", "must not be an empty list", "")
		return ""
	}
	words, ok := a.words(p, items, single)
	if !ok {
		return ""
	}
	if strings.TrimSpace(words[0]) == "" {
		a.fail(p.key, "script", "must not be empty", "")
		return ""
	}
	a.app.Script = words[0]
	a.scriptRest = words[1:]
	return words[0]
}

// words reads the items of a string-or-list key as text. A lone string is
// one word: script: "my server" is one path, as in PM2.
func (a *appDecoder) words(p pair, items []*yaml.Node, single bool) ([]string, bool) {
	out := make([]string, 0, len(items))
	ok := true
	for i, it := range items {
		s, err := nodeString(it)
		key := p.name
		if !single {
			key = fmt.Sprintf("%s[%d]", p.name, i)
		}
		switch {
		case err != nil:
			a.fail(it, key, "must be a string or a number (got "+describe(it)+")", "")
			ok = false
		case strings.IndexByte(s, 0) >= 0:
			a.fail(it, key, "must not contain a NUL byte", "")
			ok = false
		}
		out = append(out, s)
	}
	return out, ok
}

// workDir reads cwd: relative to the app file's directory, which is also
// the default.
func (a *appDecoder) workDir() {
	a.app.Dir = a.dir
	p, ok := a.keys["cwd"]
	if !ok {
		return
	}
	s, err := nodeString(p.val)
	switch {
	case err != nil:
		a.bad(p, err, "")
	case strings.TrimSpace(s) == "":
		a.fail(p.key, "cwd", "must not be empty", "leave cwd out to use the app file's directory")
	case strings.IndexByte(s, 0) >= 0:
		a.fail(p.key, "cwd", "must not contain a NUL byte", "")
	default:
		a.app.Dir = a.absolute(s)
	}
}

// absolute makes path absolute against the app's directory.
func (a *appDecoder) absolute(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	base := a.app.Dir
	if base == "" {
		base = a.dir
	}
	return filepath.Join(base, path)
}

// instances reads instances: N, "max" or 0 for one per CPU, -n for CPUs
// minus n.
func (a *appDecoder) instances() {
	p, ok := a.keys["instances"]
	if !ok {
		return
	}
	a.app.InstancesSet = true
	if text, tag, ok := scalar(p.val); ok && tag == tagStr && strings.EqualFold(strings.TrimSpace(text), "max") {
		a.app.Instances = 0
		return
	}
	n, err := nodeInt(p.val)
	if err != nil {
		a.fail(p.key, "instances", `must be a whole number, "max" (one per CPU), or a negative number for CPUs minus n (got `+describe(p.val)+")", "")
		return
	}
	if n > maxInstances || n < -maxInstances {
		a.fail(p.key, "instances", fmt.Sprintf("%d is more than launch allows (%d)", n, maxInstances), `use "max" for one per CPU`)
		return
	}
	a.app.Instances = int(n)
	if n < 0 && a.opts.CPUs+int(n) < 1 {
		a.warn(p.key, a.label, "instances:"+a.app.Name, fmt.Sprintf("instances: %d leaves no CPU on this %d-CPU machine; launch runs 1 instance", n, a.opts.CPUs))
	}
}

// execMode reads exec_mode: cluster (the default) or fork, with PM2's
// _mode spellings.
func (a *appDecoder) execMode() {
	p, ok := a.keys["exec_mode"]
	if !ok {
		return
	}
	s, err := nodeString(p.val)
	switch {
	case err != nil:
		a.bad(p, err, "")
	case s == "cluster" || s == "cluster_mode":
		a.app.ExecMode = ExecCluster
	case s == "fork" || s == "fork_mode":
		a.app.ExecMode = ExecFork
	default:
		a.fail(p.key, "exec_mode", `must be "cluster" or "fork" (got `+quote(s)+")", didYouMean(s, []string{"cluster", "fork"}))
	}
}

// env reads env and the env_<NAME> sections; the section named by
// Options.Env is merged over env. Every section is checked, used or not.
func (a *appDecoder) env() {
	if p, ok := a.keys["env"]; ok {
		a.envMap(p, a.app.Env)
	}
	for _, p := range a.envSections {
		section := map[string]string{}
		a.envMap(p, section)
		if a.opts.Env != "" && p.name == envSectionPrefix+a.opts.Env {
			for k, v := range section {
				a.app.Env[k] = v
			}
		}
	}
}

// envMap reads a mapping of variable names to scalars into env.
func (a *appDecoder) envMap(p pair, env map[string]string) {
	if isNull(p.val) {
		return
	}
	pairs, ok := a.mapping(p.val, a.label)
	if !ok {
		a.fail(p.key, p.name, "must be a mapping of NAME: value (got "+describe(p.val)+")", "")
		return
	}
	for _, kv := range pairs {
		key := p.name + "." + showKey(kv.name)
		switch {
		case kv.name == "":
			a.fail(kv.key, p.name, "a variable name must not be empty", "")
			continue
		case strings.ContainsAny(kv.name, "=\x00"):
			a.fail(kv.key, key, "a variable name must not contain '=' or a NUL byte", "")
			continue
		}
		if isNull(kv.val) {
			env[kv.name] = ""
			continue
		}
		v, _, ok := scalar(kv.val)
		switch {
		case !ok:
			a.fail(kv.key, key, "must be a string, number or boolean (got "+describe(kv.val)+")", "")
		case strings.IndexByte(v, 0) >= 0:
			a.fail(kv.key, key, "must not contain a NUL byte", "")
		default:
			env[kv.name] = v
		}
	}
}

// restartPolicy reads the keys that say when and how fast workers restart
// and stop.
func (a *appDecoder) restartPolicy() {
	a.boolKey("autorestart", &a.app.Autorestart)
	a.boolKey("wait_ready", &a.app.WaitReady)
	if p, ok := a.keys["stop_exit_codes"]; ok {
		a.stopExitCodes(p)
	}
	if p, ok := a.keys["max_restarts"]; ok {
		n, err := nodeInt(p.val)
		switch {
		case err != nil:
			a.bad(p, err, "")
		case n < 0:
			a.fail(p.key, p.name, fmt.Sprintf("must not be negative (got %d)", n), "use 0 to stop after the first unstable exit")
		case n > 1<<31-1:
			a.fail(p.key, p.name, "is too large", "")
		default:
			a.app.MaxRestarts = int(n)
		}
	}
	if p, ok := a.keys["start_nice"]; ok {
		n, err := nodeInt(p.val)
		switch {
		case err != nil:
			a.bad(p, err, "")
		case n < 0 || n > 19:
			a.fail(p.key, p.name, fmt.Sprintf("must be from 0 to 19 (got %d)", n), "it is how many nice levels below the master a worker starts; 10 is a good value, 0 turns it off")
		default:
			a.app.StartNice = int(n)
		}
	}
	a.durationKey("min_uptime", &a.app.MinUptime)
	a.durationKey("restart_delay", &a.app.RestartDelay)
	a.durationKey("exp_backoff_restart_delay", &a.app.ExpBackoffRestartDelay)
	a.durationKey("kill_timeout", &a.app.KillTimeout)
	if a.durationKey("listen_timeout", &a.app.ListenTimeout) && a.app.ListenTimeout == 0 {
		p := a.keys["listen_timeout"]
		a.fail(p.key, p.name, "must be more than 0: it is how long a worker may take to become ready", "")
		a.app.ListenTimeout = defaultListenTimeout
	}
	if p, ok := a.keys["max_memory_restart"]; ok {
		n, err := nodeMemory(p.val)
		if err != nil {
			a.bad(p, err, "")
		} else {
			a.app.MaxMemoryRestart = n
		}
	}
}

// stopExitCodes reads stop_exit_codes: one code or a list, each 0..255.
func (a *appDecoder) stopExitCodes(p pair) {
	items, ok := a.items(p.val)
	if !ok {
		items = []*yaml.Node{p.val}
	}
	codes := []int{}
	for i, it := range items {
		key := p.name
		if ok {
			key = fmt.Sprintf("%s[%d]", p.name, i)
		}
		n, err := nodeInt(it)
		if err != nil || n < 0 || n > 255 {
			a.fail(it, key, "must be an exit code from 0 to 255, or a list of them (got "+describe(it)+")", "")
			continue
		}
		codes = append(codes, int(n))
	}
	a.app.StopExitCodes = codes
}

// boolKey reads a true/false key into v when given.
func (a *appDecoder) boolKey(key string, v *bool) {
	p, ok := a.keys[key]
	if !ok {
		return
	}
	b, err := nodeBool(p.val)
	if err != nil {
		a.bad(p, err, "")
		return
	}
	*v = b
}

// durationKey reads a duration key into v when given; it reports whether
// a value was read.
func (a *appDecoder) durationKey(key string, v *time.Duration) bool {
	p, ok := a.keys[key]
	if !ok {
		return false
	}
	d, err := nodeDuration(p.val)
	if err != nil {
		a.bad(p, err, "")
		return false
	}
	*v = d
	return true
}

// stopSignal reads stop_signal: a signal name or number.
func (a *appDecoder) stopSignal() {
	p, ok := a.keys["stop_signal"]
	if !ok {
		return
	}
	s, tag, _ := scalar(p.val)
	if tag == tagInt { // a YAML integer may be written 0x9
		if n, err := parseYAMLInt(s); err == nil {
			s = strconv.FormatInt(n, 10)
		}
	}
	sig, err := parseSignal(s)
	if err != nil || tag == tagBool {
		a.bad(p, errSignal, "")
		return
	}
	a.app.StopSignal = sig
}
