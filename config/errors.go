package config

import (
	"strconv"
	"strings"
)

// Error is one problem in an app file. It names where the problem is
// (file, line, column, app, key), what is wrong (Msg) and, when there is
// one, what to write instead (Hint).
type Error struct {
	// File is the app file as given to Load or Parse.
	File string
	// Line and Column are 1-based; 0 when unknown (an ecosystem.config.js is
	// evaluated by node, so its errors carry no position; an unreadable file
	// has none either).
	Line, Column int
	// App names the app the problem is in: `app "web"`, or `apps[2]` when
	// the entry has no usable name. Empty for problems outside any app.
	App string
	// Key is the key the problem is about, with a path below it when needed:
	// "instances", "listen[1].mode", "env.PORT". Empty for whole-file problems.
	Key string
	// Msg says what is wrong and what would be accepted.
	Msg string
	// Hint is a suggestion such as `did you mean "instances"?`; may be empty.
	Hint string
	// Err is the underlying cause (an *fs.PathError, node's failure), if any.
	Err error
}

// Error formats the problem as
//
//	app.yaml:7:5: app "web": instances: must be an integer, ... (got "lots"); hint
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	if e.App != "" {
		b.WriteString(e.App + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// Unwrap returns the underlying cause, so errors.Is(err, fs.ErrNotExist)
// works for a missing file.
func (e *Error) Unwrap() error { return e.Err }

// Errors is several problems found in one app file, in file order (at most
// maxErrors of them, the last then saying that more were left out). Parse
// returns a single *Error when there is one problem and Errors when there
// are several; errors.As finds an *Error in either.
type Errors []*Error

// Error joins the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, for errors.As and errors.Is.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxErrors caps the problems reported for one file: past it, the rest are
// usually consequences of the first ones.
const maxErrors = 20

// asError returns nil, the only problem, or all of them.
func asError(es Errors) error {
	switch len(es) {
	case 0:
		return nil
	case 1:
		return es[0]
	default:
		return es
	}
}

// quote shows a user's text in a message.
func quote(s string) string {
	const limit = 60
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return strconv.Quote(s)
}
