package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// An ecosystem.config.js is PM2's app file written as a CommonJS module.
// launch does not interpret JavaScript: node evaluates the module and hands
// back the JSON of its exports, which is then read like a JSON app file.

// nodeTimeout bounds node's evaluation of an ecosystem file, which may do
// anything, including never exiting.
const nodeTimeout = 30 * time.Second

// maxNodeOutput bounds the JSON read back from node.
const maxNodeOutput = 16 << 20

// evalScript requires the module named by its first argument and writes the
// JSON of its exports (module.exports, or an ES module's default) to fd 3,
// so that console.log in the module cannot corrupt it. process.exit stops
// timers and servers the module may have started.
const evalScript = `
const fs = require('fs');
let m = require(process.argv[1]);
if (m && m.__esModule && 'default' in m) m = m.default;
const s = JSON.stringify(m === undefined ? null : m);
fs.writeFileSync(3, s === undefined ? 'null' : s);
process.exit(0);
`

// errNoNode says that node is needed and missing.
var errNoNode = errors.New("reading an ecosystem .js file needs node, which is not on PATH")

// readJS evaluates an ecosystem file with eval (node when nil) and parses
// the JSON it returns. The nodes carry no positions: the JSON's lines are
// not the file's.
func readJS(path string, eval func(string) ([]byte, error)) (*yaml.Node, *Error) {
	if eval == nil {
		eval = evalWithNode
	}
	out, err := eval(path)
	if err != nil {
		e := &Error{Msg: "cannot evaluate the ecosystem file: " + err.Error(), Err: err}
		if errors.Is(err, errNoNode) {
			e.Msg = err.Error()
			e.Hint = "install Node.js, or write the app file as YAML or JSON"
		}
		return nil, e
	}
	root, perr := readJSON(out, false)
	if perr != nil {
		perr.Msg = "node's output for the ecosystem file is not JSON: " + perr.Msg
		perr.Line, perr.Column = 0, 0
	}
	return root, perr
}

// Runner runs program with args in dir, with out as its fd 3 and the
// caller's environment, waits for it (at most until ctx is done) and
// returns the end of its stderr and its failure. A master whose reaper
// owns every wait runs node through its own spawner; os/exec would race
// the reaper for the exit status.
type Runner func(ctx context.Context, program string, args []string, dir string, out *os.File) (stderr string, err error)

// NodeEvalWith returns an Options.NodeEval that evaluates an ecosystem
// file with node, started by run.
func NodeEvalWith(run Runner) func(path string) ([]byte, error) {
	return func(path string) ([]byte, error) { return evalNode(path, run) }
}

// evalWithNode runs node on the ecosystem file at path with os/exec.
func evalWithNode(path string) ([]byte, error) { return evalNode(path, execRunner) }

// execRunner is the Runner of a process that has no reaper of its own.
func execRunner(ctx context.Context, program string, args []string, dir string, out *os.File) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Dir = dir
	cmd.Stdout = io.Discard // the module's console.log
	cmd.Stderr = &limitedBuffer{buf: &stderr, limit: 8 << 10}
	cmd.ExtraFiles = []*os.File{out}
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return stderr.String(), err
}

// evalNode runs node on the ecosystem file at path, in the file's
// directory and with launch's environment (ecosystem files read
// process.env), and returns the JSON of its exports.
func evalNode(path string, run Runner) ([]byte, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", errNoNode, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	out, err := os.CreateTemp("", "launch-ecosystem-*.json")
	if err != nil {
		return nil, fmt.Errorf("create a file for node's output: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()

	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	if stderr, err := run(ctx, node, []string{"-e", evalScript, abs}, filepath.Dir(abs), out); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("node did not finish within %s", nodeTimeout)
		}
		if msg := strings.TrimSpace(stderr); msg != "" {
			return nil, fmt.Errorf("node: %w:\n%s", err, msg)
		}
		return nil, fmt.Errorf("node: %w", err)
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(out, maxNodeOutput+1))
	if err != nil {
		return nil, fmt.Errorf("read node's output: %w", err)
	}
	if len(data) > maxNodeOutput {
		return nil, fmt.Errorf("node's output is larger than %d bytes", maxNodeOutput)
	}
	return data, nil
}

// limitedBuffer keeps the first limit bytes written to it and drops the rest.
type limitedBuffer struct {
	buf   *bytes.Buffer
	limit int
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if room := w.limit - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
