package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file reads values out of yaml.Nodes: it follows aliases, expands
// merge keys, and turns scalars into Go values. Every reader returns an
// error whose text says what would have been accepted; the caller adds the
// position, the key and what was written.

// maxAliasHops bounds a chain of aliases; yaml.v3 never builds a long one,
// but a hand-built node tree could.
const maxAliasHops = 32

// maxMergeDepth bounds merge keys (<<) nested inside merged mappings.
const maxMergeDepth = 16

// nodeBudget bounds the mapping pairs and list items walked in one file.
// Aliases let a small file name the same large node many times (a "billion
// laughs" file); the budget stops that long before it costs real time or
// memory. No honest app file comes near it.
const nodeBudget = 1 << 20

// errBudget is reported once when a file exhausts nodeBudget.
var errBudget = errors.New("the file expands to too many values (through aliases or merge keys); launch stops reading it")

// resolve follows aliases to the node they name; nil for a missing node or
// an alias chain that does not end.
func resolve(n *yaml.Node) *yaml.Node {
	for hops := 0; n != nil && n.Kind == yaml.AliasNode; hops++ {
		if hops == maxAliasHops {
			return nil
		}
		n = n.Alias
	}
	return n
}

// pair is one key and value of a mapping.
type pair struct {
	// name is the key as written.
	name string
	key  *yaml.Node
	val  *yaml.Node
}

// mapping returns the pairs of the mapping n in file order, with merge keys
// (`<<: *base`, `<<: [*a, *b]`) expanded as YAML specifies: a key written in
// the mapping wins over a merged one, and earlier merged mappings win over
// later ones. A key written twice is an error; so is a key that is not a
// scalar. ok is false when n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, scope string) (pairs []pair, ok bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.spend() {
			return pairs, true
		}
		k, v := n.Content[i], n.Content[i+1]
		rk := resolve(k)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			d.problem(k, scope, "", "a key must be a plain word such as name or script (got "+describe(k)+")", "")
			continue
		}
		if rk.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := seen[rk.Value]; dup {
			d.problem(k, scope, showKey(rk.Value), "is given twice"+atLine(" (first at line %d)", first), "remove one of them")
			continue
		}
		seen[rk.Value] = k
		pairs = append(pairs, pair{name: rk.Value, key: k, val: v})
	}
	for _, m := range merges {
		for _, p := range d.merged(m, scope, 0) {
			if _, dup := seen[p.name]; dup {
				continue
			}
			seen[p.name] = p.key
			pairs = append(pairs, p)
		}
	}
	return pairs, true
}

// merged returns the pairs a merge key's value brings in: those of one
// mapping or of a list of mappings.
func (d *decoder) merged(v *yaml.Node, scope string, depth int) []pair {
	v = resolve(v)
	if depth >= maxMergeDepth {
		d.problem(v, scope, "<<", "merge keys are nested too deeply", "")
		return nil
	}
	var sources []*yaml.Node
	switch {
	case v != nil && v.Kind == yaml.MappingNode:
		sources = []*yaml.Node{v}
	case v != nil && v.Kind == yaml.SequenceNode:
		sources = v.Content
	default:
		d.problem(v, scope, "<<", "a merge key needs a mapping or a list of mappings (got "+describe(v)+")", "")
		return nil
	}
	seen := map[string]bool{}
	var out []pair
	for _, s := range sources {
		s = resolve(s)
		if s == nil || s.Kind != yaml.MappingNode {
			d.problem(v, scope, "<<", "a merge key needs a mapping or a list of mappings (got "+describe(s)+")", "")
			continue
		}
		var inner []*yaml.Node
		for i := 0; i+1 < len(s.Content); i += 2 {
			if !d.spend() {
				return out
			}
			k := resolve(s.Content[i])
			if k == nil || k.Kind != yaml.ScalarNode {
				continue // reported when s itself is read as a mapping, if ever
			}
			if k.ShortTag() == "!!merge" {
				inner = append(inner, s.Content[i+1])
				continue
			}
			if !seen[k.Value] {
				seen[k.Value] = true
				out = append(out, pair{name: k.Value, key: s.Content[i], val: s.Content[i+1]})
			}
		}
		for _, m := range inner {
			for _, p := range d.merged(m, scope, depth+1) {
				if !seen[p.name] {
					seen[p.name] = true
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// items returns the elements of the list n (aliases not yet resolved);
// ok is false when n is not a list.
func (d *decoder) items(n *yaml.Node) (items []*yaml.Node, ok bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil, false
	}
	for _, it := range n.Content {
		if !d.spend() {
			break
		}
		items = append(items, it)
	}
	return items, true
}

// spend takes one unit of the node budget, reporting errBudget once when
// it runs out.
func (d *decoder) spend() bool {
	if d.budget <= 0 {
		if !d.overBudget {
			d.overBudget = true
			d.problem(nil, "", "", errBudget.Error(), "")
		}
		return false
	}
	d.budget--
	return true
}

// Scalar classes, from a node's resolved tag.
const (
	tagStr   = "!!str"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagBool  = "!!bool"
	tagNull  = "!!null"
)

// scalar returns a scalar's text and resolved tag; ok is false for lists,
// mappings and nulls (a missing value is a null).
func scalar(n *yaml.Node) (text, tag string, ok bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", "", false
	}
	tag = n.ShortTag()
	if tag == tagNull {
		return "", tag, false
	}
	return n.Value, tag, true
}

// isEmptyList reports whether n is a list with no items.
func isEmptyList(n *yaml.Node) bool {
	n = resolve(n)
	return n != nil && n.Kind == yaml.SequenceNode && len(n.Content) == 0
}

// isNull reports whether n is absent or null.
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == tagNull)
}

// describe shows what was written, for "(got ...)" in messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.DocumentNode:
		return "a document"
	case n.Kind != yaml.ScalarNode:
		return "an unknown node"
	}
	switch n.ShortTag() {
	case tagNull:
		return "null"
	case tagStr:
		return quote(n.Value)
	default:
		if len(n.Value) > 40 {
			return n.Value[:40] + "..."
		}
		return n.Value
	}
}

// nodeString reads text: a string, or a number as written. Booleans, nulls
// and collections are refused.
func nodeString(n *yaml.Node) (string, error) {
	text, tag, ok := scalar(n)
	if !ok || tag == tagBool {
		return "", errors.New("must be a string")
	}
	return text, nil
}

// nodeBool reads true or false.
func nodeBool(n *yaml.Node) (bool, error) {
	text, tag, ok := scalar(n)
	if ok && tag == tagBool {
		switch strings.ToLower(text) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, errors.New("must be true or false")
}

// nodeInt reads a whole number: a YAML or JSON integer, or a string of
// decimal digits ("4", "-1").
func nodeInt(n *yaml.Node) (int64, error) {
	text, tag, ok := scalar(n)
	if !ok {
		return 0, errors.New("must be a whole number")
	}
	switch tag {
	case tagInt:
		return parseYAMLInt(text)
	case tagStr:
		s := strings.TrimSpace(text)
		if isInteger(s) {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, errors.New("is too large")
			}
			return v, nil
		}
	case tagFloat:
		// yaml.v3 resolves an integer too large for int64 as a float.
		if isInteger(strings.ReplaceAll(text, "_", "")) {
			return 0, errors.New("is too large")
		}
	}
	return 0, errors.New("must be a whole number")
}

// parseYAMLInt parses an integer the way yaml.v3 resolved it: base prefixes
// (0x, 0o, 0b, and a leading 0 for octal) and '_' separators allowed.
func parseYAMLInt(text string) (int64, error) {
	v, err := strconv.ParseInt(strings.ReplaceAll(text, "_", ""), 0, 64)
	if err != nil {
		return 0, errors.New("is too large")
	}
	return v, nil
}

// errDuration says which durations are accepted.
var errDuration = errors.New(`must be milliseconds (1500) or a duration with a unit ("1.5s", "200ms", "2m")`)

// nodeDuration reads a duration: an integer count of milliseconds (PM2), a
// numeric string of milliseconds, or a Go duration string ("1.5s").
func nodeDuration(n *yaml.Node) (time.Duration, error) {
	text, tag, ok := scalar(n)
	switch {
	case ok && tag == tagInt:
		v, err := parseYAMLInt(text)
		if err != nil {
			if strings.HasPrefix(text, "-") {
				return 0, errors.New("must not be negative")
			}
			return 0, err
		}
		return millis(v)
	case ok && tag == tagStr:
		return parseDuration(text)
	case ok && tag == tagFloat && strings.HasPrefix(text, "-"):
		return 0, errors.New("must not be negative")
	}
	return 0, errDuration
}

// nodeMemory reads a memory size: integer bytes or a size string ("512M").
func nodeMemory(n *yaml.Node) (int64, error) {
	text, tag, ok := scalar(n)
	switch {
	case ok && tag == tagInt:
		if strings.HasPrefix(text, "-") {
			return 0, errors.New("must not be negative")
		}
		return parseYAMLInt(text)
	case ok && tag == tagStr:
		return parseMemory(text)
	}
	return 0, errMemory
}

// stringList reads a string or a list of strings and numbers; single is
// true when a lone string was written.
func (d *decoder) stringList(n *yaml.Node) (list []*yaml.Node, single bool, err error) {
	if items, ok := d.items(n); ok {
		return items, false, nil
	}
	if _, err := nodeString(n); err != nil {
		return nil, false, errors.New("must be a string or a list of strings")
	}
	return []*yaml.Node{n}, true, nil
}

// atLine formats n's line into format, or returns "" when n has no line
// (an ecosystem.config.js gives none).
func atLine(format string, n *yaml.Node) string {
	if n == nil || n.Line == 0 {
		return ""
	}
	return fmt.Sprintf(format, n.Line)
}

// showKey shows a key as written, quoted when it holds anything but
// letters, digits and _ - . (so that a message never carries control
// characters from the file).
func showKey(key string) string {
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return quote(key)
		}
	}
	if key == "" {
		return `""`
	}
	return key
}
