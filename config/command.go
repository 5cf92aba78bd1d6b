package config

import (
	"os"
	"path/filepath"
	"strings"
)

// interpreters maps a script's extension to the interpreter PM2 picks for
// it. Other extensions (.ts included) run the script directly.
var interpreters = map[string]string{
	".js":  "node",
	".mjs": "node",
	".cjs": "node",
	".py":  "python3",
	".sh":  "bash",
	".rb":  "ruby",
	".php": "php",
	".pl":  "perl",
}

// noInterpreter is the interpreter value that runs the script directly.
const noInterpreter = "none"

// command resolves script, interpreter, interpreter_args and args into
// App.Command and App.Args:
//
//	with an interpreter:    interpreter interpreter_args... script script_rest... args...
//	without:                script script_rest... args...
func (a *appDecoder) command() {
	script := a.app.Script
	if script == "" {
		return // reported by nameAndScript
	}
	interp := interpreters[strings.ToLower(filepath.Ext(script))]
	if p, ok := a.keys["interpreter"]; ok {
		s, err := nodeString(p.val)
		switch {
		case err != nil:
			a.bad(p, err, "")
			return
		case strings.TrimSpace(s) == "":
			a.fail(p.key, p.name, `must not be empty`, `write interpreter: none to run the script directly`)
			return
		case strings.IndexByte(s, 0) >= 0:
			a.fail(p.key, p.name, "must not contain a NUL byte", "")
			return
		case s == noInterpreter:
			interp = ""
		default:
			interp = a.programPath(s, false)
		}
	}
	var interpArgs []string
	if p, ok := a.keys["interpreter_args"]; ok {
		if interp == "" {
			a.fail(p.key, p.name, "needs an interpreter, and this app runs its script directly", "remove it, or set interpreter:")
			return
		}
		var ok bool
		if interpArgs, ok = a.argList(p); !ok {
			return
		}
	}
	var args []string
	if p, ok := a.keys["args"]; ok {
		var ok bool
		if args, ok = a.argList(p); !ok {
			return
		}
	}
	a.app.Interpreter = interp
	if interp == "" {
		a.app.Command = a.programPath(script, true)
		a.app.Args = concat(a.scriptRest, args)
		return
	}
	a.app.Command = interp
	a.app.Args = concat(interpArgs, []string{a.programPath(script, true)}, a.scriptRest, args)
}

// programPath resolves a script or interpreter against the app's directory
// when it is a path: it contains a '/', starts with '.', or (for a script)
// names a file in that directory. A bare name such as python3 stays as it
// is, for the launcher's PATH lookup.
func (a *appDecoder) programPath(s string, script bool) string {
	switch {
	case filepath.IsAbs(s):
		return s
	case strings.Contains(s, "/") || strings.HasPrefix(s, "."):
		return filepath.Join(a.app.Dir, s)
	case script && isFile(filepath.Join(a.app.Dir, s)):
		return filepath.Join(a.app.Dir, s)
	}
	return s
}

// isFile reports whether path names an existing file that is not a directory.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// argList reads an argument key: a string split like a shell command line,
// or a list of strings and numbers taken as they are.
func (a *appDecoder) argList(p pair) ([]string, bool) {
	items, single, err := a.stringList(p.val)
	if err != nil {
		a.bad(p, err, "")
		return nil, false
	}
	words, ok := a.words(p, items, single)
	if !ok {
		return nil, false
	}
	if !single {
		return words, true
	}
	split, err := splitArgs(words[0])
	if err != nil {
		a.fail(p.key, p.name, err.Error()+" (got "+quote(words[0])+")", "or write the arguments as a list")
		return nil, false
	}
	return split, true
}

// concat joins lists into a new one, never nil.
func concat(lists ...[]string) []string {
	out := []string{}
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
