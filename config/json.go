package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// JSON is YAML, so a JSON app file goes through the same walker as a YAML
// one. It is not handed to the YAML parser, though: encoding/json checks it
// (so a JSON syntax error reads like one), and the node tree is built from
// JSON tokens, which avoids the corners where yaml.v3 and JSON disagree
// (surrogate-pair escapes such as "\ud83d\ude00" are one).

// utf8BOM is skipped at the start of a JSON file; editors on Windows add it.
var utf8BOM = []byte("\xef\xbb\xbf")

// readJSON parses JSON into a node tree; nil for a file of only blanks.
// With positions false (JSON printed by node, whose lines mean nothing to
// the user) the nodes carry no line or column.
func readJSON(data []byte, positions bool) (*yaml.Node, *Error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	b := &jsonBuilder{data: data, positions: positions}
	if !json.Valid(data) {
		var raw json.RawMessage
		err := json.Unmarshal(data, &raw)
		e := &Error{Msg: "JSON syntax error", Err: err}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			e.Msg += ": " + se.Error()
			e.Line, e.Column = b.position(int(se.Offset) - 1)
		} else if err != nil {
			e.Msg += ": " + err.Error()
		}
		return nil, e
	}
	b.dec = json.NewDecoder(bytes.NewReader(data))
	b.dec.UseNumber()
	n, err := b.value()
	if err != nil { // json.Valid said yes, so this is not expected
		return nil, &Error{Msg: "JSON syntax error: " + err.Error(), Err: err}
	}
	return n, nil
}

// jsonBuilder builds yaml.Nodes from JSON tokens, with positions.
type jsonBuilder struct {
	data      []byte
	dec       *json.Decoder
	positions bool
	// end is the offset just after the last token read.
	end int
	// lineStarts are the offsets where lines begin, computed on first use.
	lineStarts []int
}

// value reads one JSON value (scalar, object or array) as a node.
func (b *jsonBuilder) value() (*yaml.Node, error) {
	start := b.skip()
	tok, err := b.dec.Token()
	if err != nil {
		return nil, err
	}
	b.end = int(b.dec.InputOffset())
	n := &yaml.Node{}
	n.Line, n.Column = b.position(start)
	switch t := tok.(type) {
	case json.Delim:
		n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
		if t == '{' {
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
		}
		for b.dec.More() {
			if n.Kind == yaml.MappingNode {
				k, err := b.value()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, k)
			}
			v, err := b.value()
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, v)
		}
		if _, err := b.dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		b.end = int(b.dec.InputOffset())
		return n, nil
	case string:
		n.Kind, n.Tag, n.Value, n.Style = yaml.ScalarNode, tagStr, t, yaml.DoubleQuotedStyle
	case json.Number:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, tagInt, t.String()
		if strings.ContainsAny(n.Value, ".eE") {
			n.Tag = tagFloat
		}
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, tagBool, "false"
		if t {
			n.Value = "true"
		}
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, tagNull, "null"
	}
	return n, nil
}

// skip returns the offset where the next token starts: past blanks and the
// ',' and ':' that the decoder consumes without returning.
func (b *jsonBuilder) skip() int {
	i := b.end
	for i < len(b.data) && strings.IndexByte(" \t\r\n,:", b.data[i]) >= 0 {
		i++
	}
	return i
}

// position turns a byte offset into a 1-based line and column; 0, 0 when
// positions are off.
func (b *jsonBuilder) position(off int) (line, col int) {
	if !b.positions {
		return 0, 0
	}
	if b.lineStarts == nil {
		b.lineStarts = []int{0}
		for i, c := range b.data {
			if c == '\n' {
				b.lineStarts = append(b.lineStarts, i+1)
			}
		}
	}
	off = max(0, min(off, len(b.data)))
	i := sort.Search(len(b.lineStarts), func(i int) bool { return b.lineStarts[i] > off }) - 1
	return i + 1, off - b.lineStarts[i] + 1
}
