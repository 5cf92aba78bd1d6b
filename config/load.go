package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Options tune Load and Parse. The zero value is ready to use.
type Options struct {
	// CPUs is the CPU count instances resolve against, used here only in
	// messages; 0 means runtime.GOMAXPROCS(0).
	CPUs int
	// Env names the PM2-style env section (env_<Env>) merged over env, as
	// `--env production` does for env_production. An Env no app has a
	// section for is not an error. Empty: no section is merged.
	Env string
	// NodeEval evaluates an ecosystem.config.js and returns the JSON of its
	// exports. nil runs `node -e` on the file, in the file's directory, for
	// at most 30 seconds; a test or an embedder may supply its own.
	NodeEval func(path string) ([]byte, error)
}

// Load reads and parses the app file at path. Problems come back as an
// *Error, or Errors when there are several; an unreadable file is an *Error
// wrapping the OS error (errors.Is(err, fs.ErrNotExist) works).
func Load(path string, opts Options) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		reason := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			reason = pe.Err
		}
		return nil, &Error{File: path, Msg: "cannot read the app file: " + reason.Error(), Err: err}
	}
	return Parse(path, data, opts)
}

// Parse parses an app file's contents. path names the file in messages,
// chooses the format by extension (.yaml/.yml YAML, .json JSON, .js/.cjs an
// ecosystem file evaluated by node, anything else YAML) and anchors
// relative paths (the default cwd is path's directory). For .js/.cjs, data
// is not used: node evaluates the file at path.
//
// A *File returned without error is fully validated and defaulted.
// Parse never panics, whatever data holds, and may be called concurrently.
func Parse(path string, data []byte, opts Options) (*File, error) {
	if opts.CPUs <= 0 {
		opts.CPUs = runtime.GOMAXPROCS(0)
	}
	dir, err := fileDir(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot find the app file's directory: " + err.Error(), Err: err}
	}
	d := newDecoder(path, dir, opts)

	var root *yaml.Node
	var perr *Error
	switch formatOf(path) {
	case formatJS:
		root, perr = readJS(path, opts.NodeEval)
	case formatJSON:
		root, perr = readJSON(data, true)
	default:
		root, perr = readYAML(data)
	}
	if perr != nil {
		perr.File = path
		return nil, perr
	}
	apps := d.walk(root)
	if err := d.errors(); err != nil {
		return nil, err
	}
	f := d.top
	f.Path, f.Apps, f.Warnings = path, apps, d.warnings()
	return &f, nil
}

// fileDir returns the absolute directory of path: the current directory
// for an empty path.
func fileDir(path string) (string, error) {
	if path == "" {
		return os.Getwd()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return filepath.Dir(abs), nil
}

// format is an app file's syntax.
type format int

const (
	formatYAML format = iota
	formatJSON
	formatJS
)

// formatOf picks the format from path's extension.
func formatOf(path string) format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return formatJSON
	case ".js", ".cjs":
		return formatJS
	default:
		return formatYAML
	}
}

// readYAML parses YAML into its document node; nil for an empty document.
// Only the first document is read; a second is an error.
func readYAML(data []byte) (root *yaml.Node, perr *Error) {
	defer func() {
		// yaml.v3 is well fuzzed, but a parser bug must not take the
		// master down with it: a running master reloads files on SIGHUP.
		if r := recover(); r != nil {
			root, perr = nil, &Error{Msg: fmt.Sprintf("the YAML parser failed on this file: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlSyntaxError(err, data)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlSyntaxError(err, data)
	case len(next.Content) > 0 && !isNull(next.Content[0]):
		n := next.Content[0]
		return nil, &Error{Line: n.Line, Column: n.Column,
			Msg:  "the file holds a second YAML document (after ---); launch reads one",
			Hint: "put every app in one apps: list"}
	}
	return &doc, nil
}

// yamlLine finds "line N: " in a yaml.v3 error.
var yamlLine = regexp.MustCompile(`^line (\d+): `)

// yamlAnchor finds the anchor named in yaml.v3's anchor errors.
var yamlAnchor = regexp.MustCompile(`^(unknown anchor|anchor) '([^']*)'`)

// parserProblems are yaml.v3's parser (not scanner) messages: their line
// numbers count from 0, where the scanner's count from 1.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// yamlSyntaxError turns a yaml.v3 error into an *Error with a line.
// yaml.v3 reports "yaml: line N: msg", leaves the line out when it is the
// first, and counts parser errors' lines from 0; anchor errors carry no
// line, so the anchor is looked up in the text.
func yamlSyntaxError(err error, data []byte) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		msg = msg[len(m[0]):]
		if n, err := strconv.Atoi(m[1]); err == nil {
			line = n
		}
		if parserProblems[msg] {
			line++
		}
	} else if m := yamlAnchor.FindStringSubmatch(msg); m != nil {
		mark := "*"
		if m[1] == "anchor" {
			mark = "&"
		}
		if i := bytes.Index(data, []byte(mark+m[2])); i >= 0 {
			line = 1 + bytes.Count(data[:i], []byte("\n"))
		}
	}
	e := &Error{Line: line, Msg: "YAML syntax error: " + msg, Err: err}
	if strings.Contains(msg, "cannot start any token") && bytes.Contains(lineOf(data, line), []byte("\t")) {
		e.Hint = "YAML indents with spaces, not tabs"
	}
	return e
}

// lineOf returns line n (1-based) of data, or nil.
func lineOf(data []byte, n int) []byte {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return nil
		}
		data = data[j+1:]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	return data
}
