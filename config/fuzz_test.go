package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// fuzzSeeds are the seed corpus of FuzzParse: valid files, invalid ones,
// and odd YAML. They run in every plain `go test`.
var fuzzSeeds = []struct {
	src  string
	json bool
}{
	// Valid.
	{"apps:\n  - script: ./server\n", false},
	{"script: app.js\ninstances: max\nwait_ready: true\n", false},
	{"- script: a\n- script: b.py\n  args: \"-x 'y z'\"\n", false},
	{`apps:
  - name: web
    script: [./bin/server, --flag]
    instances: -1
    exec_mode: cluster
    env: {APP_ENV: production, PORT: 8080}
    env_production: {APP_ENV: prod}
    listen: ["0.0.0.0:8080", {address: "unix:web.sock", name: admin, mode: "0660"}]
    balance: reuseport
    ready: delay:500ms
    min_uptime: 2s
    kill_timeout: 5000
    max_memory_restart: 512M
    stop_signal: SIGINT
    stop_exit_codes: [0, 2]
    uid: root
    watch: true
deploy: {}
`, false},
	{`{"apps": [{"name": "api", "script": "server.js", "instances": "max", "env": {"A": 1}}]}`, true},
	{`[{"script": "x", "listen": [8080, ":8081"], "node_args": ["--inspect"]}]`, true},
	// Invalid.
	{"", false},
	{"apps:\n", false},
	{"apps: [\n", false},
	{"a: b: c\n", false},
	{"apps:\n\t- script: x\n", false},
	{"apps:\n  - instanses: 3\n    script: x\n", false},
	{"apps:\n  - name: a\n    script: x\n  - name: a\n    script: y\n", false},
	{"apps:\n  - script: x\n    min_uptime: -5\n    listen: [\"*:80\", \"::1:80\", \"unix:\"]\n", false},
	{"apps:\n  - script: x\n    exec_mode: fork\n    listen: 80\n    balance: proxy\n    ready: http\n", false},
	{"apps:\n  - script: x\n    listen: unix:/tmp/a.sock\n    balance: reuseport\n", false},
	{`{"apps": [{"script": "x",}]}`, true},
	{`{"apps": [{"script": "x", "script": 1}]}`, true},
	{`{"apps": [{"script": "\ud83d\ude00"}]} trailing`, true},
	{"\xef\xbb\xbf{\"apps\": null}", true},
	{"[]", false}, // found by fuzzing: an empty list of apps was accepted
	{"{}", true},
	// Odd YAML: anchors, aliases, merge keys, tags, huge numbers, nulls, nesting.
	{"x-d: &d {instances: 2, env: {A: 1}}\napps:\n  - <<: *d\n    script: x\n  - <<: [*d, {script: y}]\n", false},
	{"apps: &a [*a]\n", false},
	{"apps:\n  - &app {script: x, name: n}\n  - *app\n", false},
	{"apps:\n  - <<: {<<: {<<: {script: deep}}}\n", false},
	{"apps:\n  - <<: 3\n    script: x\n", false},
	{"apps:\n  - <<: [*undefined]\n", false},
	{"apps:\n  - script: !!binary aGVsbG8=\n    instances: !!str 3\n    name: !custom tag\n", false},
	{"apps:\n  - script: x\n    instances: 99999999999999999999999999\n    kill_timeout: 1e400\n    max_memory_restart: 0x7fffffffffffffff\n", false},
	{"apps:\n  - script: ~\n    name: null\n    env: ~\n    listen: ~\n", false},
	{"apps:\n  - script: [[[[[]]]]]\n    args: [[a], {b: c}]\n    env: {A: [1]}\n", false},
	{"apps:\n  - ? [complex, key]\n    : value\n    script: x\n", false},
	{"apps:\n  - script: x\n---\napps: []\n", false},
	{"%YAML 1.1\n---\napps: [{script: x}]\n", false},
	{"apps:\n  - script: x\n    instances: 0o10\n    min_uptime: 1_000\n    stop_signal: 0x9\n", false},
	{"apps:\n  - script: x\n    uid: 4294967295\n    gid: -1\n", false},
	{"apps:\n  - script: x\n    listen: [{address: {a: b}}, {address: ':80', mode: [1]}, {address: 'unix:/x', mode: 99999999999}]\n", false},
	{"apps:\n  - script: x\n    ready: \"delay:-1s\"\n    stop_exit_codes: {a: 1}\n", false},
	{"apps:\n  - script: \"\\0\"\n    args: \"\\0\"\n    env: {\"\\0\": \"\\0\"}\n", false},
	{"x-l0: &l0 {A: 1, B: 2}\nx-l1: &l1 {<<: [*l0, *l0, *l0]}\nx-l2: &l2 {<<: [*l1, *l1, *l1]}\napps: [{script: x, env: *l2}]\n", false},
	// Logs, proxy mode and the top-level settings.
	{`metrics: 127.0.0.1:9464
shutdown_delay: 5s
sample_interval: 250ms
apps:
  - name: web
    script: ./server
    listen: [":8080", "unix:/tmp/web.sock"]
    balance: proxy
    protocol: http
    proxy_to: unix
    sticky: ip
    ready: http:/ready
    health_check: {path: /healthz, interval: 5s, timeout: 2s}
    proxy: {strategy: round_robin, max_conns: 100, read_timeout: 1s, write_timeout: 0, idle_timeout: 2m, max_header_size: 16K}
    out_file: logs/out.log
    err: /dev/null
    log: NULL
    log_date_format: "YYYY-MM-DD HH:mm:ss.SSS Z"
    log_max_size: 1M
    log_max_files: 3
  - name: db
    script: ./pg
    listen: 5432
    balance: proxy
    protocol: tcp
`, false},
	{`{"metrics": ":9464", "sample_interval": 100, "apps": [{"script": "x", "listen": 80, "balance": "proxy", "ready": "listen", "out": "o.log", "error": "e.log", "log_date_format": "[at] h:mm a"}]}`, true},
	{"apps:\n  - script: x\n    balance: proxy\n    listen: 80\n    protocol: tcp\n    sticky: true\n    health_check: {path: x, intervall: 0}\n    ready: http:/x\n    proxy: {max_con: -1, strategy: [a]}\n", false},
	{"apps:\n  - script: x\n    protocol: http\n    proxy_to: unix\n    proxy: 3\n    out_file: ''\n    output: a\n    log_date_format: '[Jan] ssSSS Q'\n    log_max_size: 1\n    log_max_files: -1\n", false},
	{"metrics: '*:x'\nsample_interval: 1\nshutdown_delay: -1\nmetric: 1\napps:\n  - script: x\n    metrics: 1\n", false},
	{"metrics: ':80'\napps:\n  - script: x\n    listen: 80\n", false},
	{"apps:\n  - script: x\n    log_date_format: '[[]]YYYY[' \n", false},
}

// FuzzParse checks that no input panics, hangs or breaks Parse's contract:
// either a fully defaulted File or a positioned *Error / Errors.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s.src), s.json)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		name := "app.yaml"
		if isJSON {
			name = "app.json"
		}
		path := filepath.Join(dir, name)
		file, err := Parse(path, data, Options{CPUs: 4})
		if err != nil {
			checkFuzzError(t, path, err)
			return
		}
		if len(file.Apps) == 0 {
			t.Fatalf("no error and no apps")
		}
		if file.SampleInterval < minSampleInterval || file.ShutdownDelay < 0 {
			t.Fatalf("top level: sample_interval %v, shutdown_delay %v", file.SampleInterval, file.ShutdownDelay)
		}
		if file.Metrics != "" {
			if _, _, err := metricsAddress(&yaml.Node{Kind: yaml.ScalarNode, Tag: tagStr, Value: file.Metrics}); err != nil {
				t.Fatalf("metrics %q does not parse again: %v", file.Metrics, err)
			}
		}
		for _, a := range file.Apps {
			switch {
			case a.Name == "" || a.Command == "" || a.Script == "":
				t.Fatalf("app missing name/command/script: %+v", *a)
			case !filepath.IsAbs(a.Dir):
				t.Fatalf("app dir not absolute: %q", a.Dir)
			case a.Env == nil || a.Args == nil:
				t.Fatalf("app env/args nil: %+v", *a)
			case a.Balance != BalanceShared && a.Balance != BalanceReusePort && a.Balance != BalanceProxy:
				t.Fatalf("balance %q in a valid file", a.Balance)
			case (a.Balance == BalanceProxy) != (a.Proxy != nil):
				t.Fatalf("balance %q with proxy settings %+v", a.Balance, a.Proxy)
			case a.Balance == BalanceProxy && (a.ExecMode != ExecCluster || len(a.Listen) == 0):
				t.Fatalf("proxy mode with exec mode %q and %d listen addresses", a.ExecMode, len(a.Listen))
			case a.ExecMode != ExecCluster && a.ExecMode != ExecFork:
				t.Fatalf("exec mode %q", a.ExecMode)
			case a.Ready.Kind != ReadyDelay && a.Ready.Kind != ReadyNotify && a.Ready.Kind != ReadyIPC && a.Balance != BalanceProxy:
				t.Fatalf("ready %q in a valid file without proxy", a.Ready.Kind)
			case a.Ready.Kind == ReadyHTTP && (a.Proxy == nil || a.Proxy.Protocol != ProtocolHTTP || checkHTTPPath(a.Ready.Path) != nil):
				t.Fatalf("ready http:%q with proxy %+v", a.Ready.Path, a.Proxy)
			case a.LogMaxSize < 0 || a.LogMaxFiles < 0:
				t.Fatalf("log rotation %d, %d", a.LogMaxSize, a.LogMaxFiles)
			case a.MinUptime < 0 || a.KillTimeout < 0 || a.ListenTimeout <= 0 || a.RestartDelay < 0 || a.MaxMemoryRestart < 0 || a.MaxRestarts < 0:
				t.Fatalf("negative value: %+v", *a)
			case a.Count(4) < 1:
				t.Fatalf("count < 1")
			case a.ExecMode == ExecFork && len(a.Listen) > 0:
				t.Fatalf("fork app with listen")
			}
			for _, l := range a.Listen {
				if l.Name == "" || checkFDName(l.Name) != nil {
					t.Fatalf("bad fd name %q", l.Name)
				}
			}
			for _, p := range []string{a.OutFile, a.ErrorFile, a.LogFile} {
				if p != "" && !filepath.IsAbs(p) {
					t.Fatalf("log path %q is not absolute", p)
				}
			}
			if px := a.Proxy; px != nil {
				switch {
				case px.Protocol != ProtocolHTTP && px.Protocol != ProtocolTCP,
					px.To != ProxyToTCP && px.To != ProxyToUnix,
					px.Strategy != StrategyLeast && px.Strategy != StrategyRoundRobin,
					px.MaxConns < 1, px.MaxHeaderBytes < minHeaderSize,
					px.ReadTimeout < 0, px.WriteTimeout < 0, px.IdleTimeout < 0,
					px.Protocol == ProtocolTCP && (px.Sticky || px.HealthPath != ""),
					px.HealthPath != "" && (px.HealthInterval <= 0 || px.HealthTimeout <= 0 || px.HealthTimeout > px.HealthInterval):
					t.Fatalf("bad proxy settings %+v", *px)
				}
			}
		}
	})
}

// checkFuzzError checks that err is an *Error or Errors naming the file.
func checkFuzzError(t *testing.T, path string, err error) {
	var es Errors
	var e *Error
	switch {
	case errors.As(err, &es):
		if len(es) == 0 || len(es) > maxErrors+1 {
			t.Fatalf("%d errors", len(es))
		}
	case errors.As(err, &e):
		es = Errors{e}
	default:
		t.Fatalf("error %T is neither *Error nor Errors: %v", err, err)
	}
	for _, e := range es {
		if e.File != path || e.Msg == "" {
			t.Fatalf("error without file or message: %#v", e)
		}
		if !strings.HasPrefix(e.Error(), path) {
			t.Fatalf("message does not start with the file: %q", e.Error())
		}
	}
}
