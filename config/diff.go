package config

import (
	"reflect"
	"slices"
	"syscall"
)

// Diff returns the app-file keys whose resolved values differ between old
// and new, in the order of App's fields, for messages such as
// `web: env, script changed`; nil when the apps are the same. Positions in
// the file (App.Line, Listen.Line) are not compared, so moving an app
// within its file changes nothing; nor is App.User, which only spells
// Credential for messages (uid: root and uid: 0 are the same). A nil App compares as the zero App.
//
// Names are the canonical keys: "script" (the script, or the program it
// resolves to), "interpreter", "args" (the arguments, from args,
// interpreter_args or a script list), "cwd", "uid", "gid", "env" (env and the selected env_<NAME>),
// "ready" (also when it follows from wait_ready), and the proxy's keys as
// written: "protocol", "proxy_to", "sticky", "health_check", and
// "proxy.strategy", "proxy.max_conns", ... for the proxy: mapping.
func Diff(old, new *App) []string {
	if old == nil && new == nil {
		return nil
	}
	if old == nil {
		old = &App{}
	}
	if new == nil {
		new = &App{}
	}
	var out []string
	add := func(key string, differ bool) {
		if differ {
			out = append(out, key)
		}
	}
	add("name", old.Name != new.Name)
	// Command and Args are resolved from script, interpreter,
	// interpreter_args, args and cwd: name what explains the change.
	cwd := old.Dir != new.Dir
	script := old.Script != new.Script || (old.Command != new.Command && old.Interpreter == new.Interpreter && !cwd)
	add("script", script)
	add("interpreter", old.Interpreter != new.Interpreter)
	// The script's resolved path is one of Args when there is an
	// interpreter: one changed element is the script's, or cwd's.
	changed := len(old.Args) != len(new.Args)
	if !changed {
		n := 0
		for i := range old.Args {
			if old.Args[i] != new.Args[i] {
				n++
			}
		}
		changed = n > 1 || (n == 1 && !script && !cwd)
	}
	add("args", changed)
	add("cwd", cwd)
	add("instances", old.Instances != new.Instances || old.InstancesSet != new.InstancesSet)
	add("exec_mode", old.ExecMode != new.ExecMode)
	add("env", !sameEnv(old.Env, new.Env))
	add("autorestart", old.Autorestart != new.Autorestart)
	add("stop_exit_codes", !slices.Equal(old.StopExitCodes, new.StopExitCodes))
	add("max_restarts", old.MaxRestarts != new.MaxRestarts)
	add("start_nice", old.StartNice != new.StartNice)
	add("min_uptime", old.MinUptime != new.MinUptime)
	add("restart_delay", old.RestartDelay != new.RestartDelay)
	add("exp_backoff_restart_delay", old.ExpBackoffRestartDelay != new.ExpBackoffRestartDelay)
	add("max_memory_restart", old.MaxMemoryRestart != new.MaxMemoryRestart)
	add("kill_timeout", old.KillTimeout != new.KillTimeout)
	add("listen_timeout", old.ListenTimeout != new.ListenTimeout)
	add("wait_ready", old.WaitReady != new.WaitReady)
	add("ready", old.Ready != new.Ready)
	uid, gid := credentialDiff(old.Credential, new.Credential)
	add("uid", uid) // User only spells the credential for messages
	add("gid", gid)
	add("listen", !sameListen(old.Listen, new.Listen))
	add("balance", old.Balance != new.Balance)
	add("stop_signal", old.StopSignal != new.StopSignal)
	add("out_file", old.OutFile != new.OutFile)
	add("error_file", old.ErrorFile != new.ErrorFile)
	add("log_file", old.LogFile != new.LogFile)
	add("log_date_format", old.LogDateFormat != new.LogDateFormat)
	add("log_max_size", old.LogMaxSize != new.LogMaxSize)
	add("log_max_files", old.LogMaxFiles != new.LogMaxFiles)
	out = append(out, proxyDiff(old.Proxy, new.Proxy)...)
	return out
}

// sameEnv compares environments, a nil map being an empty one.
func sameEnv(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sameListen compares listen lists, ignoring where they were written.
func sameListen(a, b []Listen) bool {
	return slices.EqualFunc(a, b, func(x, y Listen) bool {
		x.Line, y.Line = 0, 0
		return x == y
	})
}

// credentialDiff reports whether the uid, and the gid or groups, differ.
func credentialDiff(a, b *syscall.Credential) (uid, gid bool) {
	switch {
	case a == nil && b == nil:
		return false, false
	case a == nil || b == nil:
		return true, true
	}
	return a.Uid != b.Uid, a.Gid != b.Gid || !slices.Equal(a.Groups, b.Groups) || a.NoSetGroups != b.NoSetGroups
}

// proxyDiff names the proxy keys that differ; a nil Proxy (not proxy
// mode) differs from any other in every key (balance changed too).
func proxyDiff(a, b *Proxy) []string {
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil:
		a = &Proxy{}
	case b == nil:
		b = &Proxy{}
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	var out []string
	add := func(key string, differ bool) {
		if differ {
			out = append(out, key)
		}
	}
	add("protocol", a.Protocol != b.Protocol)
	add("proxy_to", a.To != b.To)
	add("proxy.strategy", a.Strategy != b.Strategy)
	add("sticky", a.Sticky != b.Sticky)
	add("proxy.max_conns", a.MaxConns != b.MaxConns)
	add("proxy.read_timeout", a.ReadTimeout != b.ReadTimeout)
	add("proxy.write_timeout", a.WriteTimeout != b.WriteTimeout)
	add("proxy.idle_timeout", a.IdleTimeout != b.IdleTimeout)
	add("proxy.max_header_size", a.MaxHeaderBytes != b.MaxHeaderBytes)
	add("health_check", a.HealthPath != b.HealthPath || a.HealthInterval != b.HealthInterval || a.HealthTimeout != b.HealthTimeout)
	return out
}
