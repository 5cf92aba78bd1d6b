package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// extensionPrefix starts top-level keys launch ignores without a word, so
// that a file can hold YAML anchors for its apps to merge (x-defaults: &d).
const extensionPrefix = "x-"

// decoder walks one app file's node tree into Apps, collecting problems and
// warnings as it goes so that one run reports every problem it can. A
// decoder is used once, by Parse.
type decoder struct {
	file string  // the file as given, for messages
	dir  string  // the file's directory, absolute
	opts Options // with CPUs filled in
	errs Errors
	// warns are the warnings so far; warned holds the keys already warned
	// about, so that each gets one warning per file.
	warns  []warning
	warned map[string]bool
	// dropped says problems past maxErrors were left out.
	dropped bool
	// budget counts down the pairs and items walked (see nodeBudget).
	budget     int
	overBudget bool
	// top holds the top-level settings read so far (File's Metrics,
	// ShutdownDelay and SampleInterval), defaults applied.
	top File
	// metricsKey is where metrics was written, for the clash check.
	metricsKey *yaml.Node
}

func newDecoder(file, dir string, opts Options) *decoder {
	return &decoder{file: file, dir: dir, opts: opts, warned: map[string]bool{}, budget: nodeBudget,
		top: File{SampleInterval: defaultSampleInterval}}
}

// problem records an error at n (nil when there is no position). Past
// maxErrors, problems are counted as dropped.
func (d *decoder) problem(n *yaml.Node, app, key, msg, hint string) {
	if len(d.errs) >= maxErrors {
		d.dropped = true
		return
	}
	e := &Error{File: d.file, App: app, Key: key, Msg: msg, Hint: hint}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// full reports whether the error cap is reached, to stop walking early.
func (d *decoder) full() bool { return d.dropped }

// errors returns the problems in file order (those without a line last),
// ending with a note when some were dropped; nil when there are none.
func (d *decoder) errors() error {
	sort.SliceStable(d.errs, func(i, j int) bool {
		a, b := d.errs[i], d.errs[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	if d.dropped {
		d.errs = append(d.errs, &Error{File: d.file, Msg: fmt.Sprintf("more problems not shown; fix these %d first", maxErrors)})
	}
	return asError(d.errs)
}

// warn records a warning "file:line: app: text"; only the first warning
// with a given once key is kept, so each ignored key is warned about once.
func (d *decoder) warn(n *yaml.Node, app, once, text string) {
	if d.warned[once] {
		return
	}
	d.warned[once] = true
	w := warning{text: d.file}
	if n != nil && n.Line > 0 {
		w.line = n.Line
		w.text += ":" + strconv.Itoa(n.Line)
	}
	w.text += ": "
	if app != "" {
		w.text += app + ": "
	}
	w.text += text
	d.warns = append(d.warns, w)
}

// warning is one warning and the line it is about (0: none).
type warning struct {
	line int
	text string
}

// warnings returns the warnings in file order, those without a line last.
func (d *decoder) warnings() []string {
	sort.SliceStable(d.warns, func(i, j int) bool {
		a, b := d.warns[i].line, d.warns[j].line
		if (a == 0) != (b == 0) {
			return b == 0
		}
		return a < b
	})
	var out []string
	for _, w := range d.warns {
		out = append(out, w.text)
	}
	return out
}

// walk walks the root node: a mapping with apps:, a list of apps, or a
// single app mapping.
func (d *decoder) walk(root *yaml.Node) []*App {
	if root != nil && root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			root = nil
		} else {
			root = root.Content[0]
		}
	}
	if isNull(root) {
		d.problem(nil, "", "", "no apps", "list them under apps:, each with at least a script")
		return nil
	}
	n := resolve(root)
	switch n.Kind {
	case yaml.SequenceNode:
		entries, _ := d.items(n)
		if len(entries) == 0 {
			d.problem(root, "", "", "no apps", "add at least one app with a script")
			return nil
		}
		return d.apps(entries)
	case yaml.MappingNode:
		pairs, _ := d.mapping(n, "")
		if !hasKey(pairs, "apps") && looksLikeApp(pairs) {
			return d.apps([]*yaml.Node{root}, pairs)
		}
		apps := d.topLevel(pairs)
		d.checkMetrics(apps)
		return apps
	default:
		d.problem(root, "", "", "the file must be a mapping with an apps: list, a list of apps, or one app (got "+describe(root)+")", "")
		return nil
	}
}

// hasKey reports whether pairs has the key name.
func hasKey(pairs []pair, name string) bool {
	for _, p := range pairs {
		if p.name == name {
			return true
		}
	}
	return false
}

// looksLikeApp reports whether a top-level mapping without apps: is one app
// written on its own: it has at least one app key.
func looksLikeApp(pairs []pair) bool {
	for _, p := range pairs {
		if _, ok := appKeys[p.name]; ok || isEnvSection(p.name) {
			return true
		}
	}
	return false
}

// isEnvSection reports whether key names a PM2 env_<NAME> section.
func isEnvSection(key string) bool {
	return len(key) > len(envSectionPrefix) && strings.HasPrefix(key, envSectionPrefix)
}

// topLevel walks the keys of a top-level mapping and then its apps.
func (d *decoder) topLevel(pairs []pair) []*App {
	var apps *pair
	for i, p := range pairs {
		switch p.name {
		case "apps":
			apps = &pairs[i]
		case "deploy":
			d.warn(p.key, "", "deploy", "deploy is not supported; ignored")
		case "metrics", "shutdown_delay", "sample_interval":
			d.topKey(p)
		default:
			if strings.HasPrefix(p.name, extensionPrefix) {
				continue // a place for anchors, as in docker compose files
			}
			if _, ok := appKeys[p.name]; ok || isEnvSection(p.name) {
				d.problem(p.key, "", p.name, "is an app key, not a top-level key", "move it into an entry of the apps: list")
				continue
			}
			d.problem(p.key, "", showKey(p.name), "unknown top-level key; the top level may hold apps, metrics, shutdown_delay, sample_interval, deploy and x-* keys (for anchors)", didYouMean(p.name, topKeyNames))
		}
	}
	if apps == nil {
		if len(d.errs) == 0 {
			d.problem(nil, "", "", "no apps", "list them under apps:, each with at least a script")
		}
		return nil
	}
	v := resolve(apps.val)
	switch {
	case isNull(v):
		d.problem(apps.key, "", "apps", "no apps", "add at least one app with a script")
		return nil
	case v.Kind == yaml.SequenceNode:
		entries, _ := d.items(v)
		if len(entries) == 0 {
			d.problem(apps.key, "", "apps", "no apps", "add at least one app with a script")
			return nil
		}
		return d.apps(entries)
	case v.Kind == yaml.MappingNode: // PM2 accepts a lone app here too
		return d.apps([]*yaml.Node{apps.val})
	default:
		d.problem(apps.key, "", "apps", "must be a list of apps (got "+describe(v)+")", "")
		return nil
	}
}

// apps walks app entries, then checks what spans apps: unique names and
// addresses. pairs, when given, are the already-read pairs of the one entry.
func (d *decoder) apps(entries []*yaml.Node, pairs ...[]pair) []*App {
	var apps []*App
	var decs []*appDecoder
	for i, e := range entries {
		if d.full() {
			break
		}
		scope := fmt.Sprintf("apps[%d]", i)
		var ps []pair
		if len(pairs) > 0 {
			ps = pairs[0]
		} else {
			var ok bool
			if ps, ok = d.mapping(e, scope); !ok {
				d.problem(e, scope, "", "an app must be a mapping of keys such as name and script (got "+describe(e)+")", "")
				continue
			}
		}
		a := d.app(e, ps, scope, len(pairs) > 0)
		apps = append(apps, a.app)
		decs = append(decs, a)
	}
	d.checkNames(decs)
	d.checkAddresses(decs)
	return apps
}

// checkNames reports two apps with one name.
func (d *decoder) checkNames(decs []*appDecoder) {
	first := map[string]*appDecoder{}
	for _, a := range decs {
		name := a.app.Name
		if name == "" {
			continue
		}
		prev, dup := first[name]
		if !dup {
			first[name] = a
			continue
		}
		msg := "name " + quote(name) + " is used by two apps"
		if prev.app.Line > 0 {
			msg += fmt.Sprintf(" (lines %d and %d)", prev.app.Line, a.app.Line)
		}
		hint := "give each app its own name"
		if a.nameDefaulted || prev.nameDefaulted {
			hint = "an app without name: is named after its script; give each app its own name:"
		}
		d.problem(a.nameNode, a.label, "name", msg, hint)
	}
}
