package config

import (
	"sort"
	"strings"
)

// keyKind says what launch does with an app key.
type keyKind int

const (
	// implemented: parsed, validated and used.
	implemented keyKind = iota
	// alias: another spelling of an implemented key (PM2 has several).
	alias
	// later: a key launch will implement in a later version; accepted with
	// a warning and otherwise ignored.
	later
	// pm2Ignored: a PM2 key launch does not implement; accepted with a
	// warning and otherwise ignored, so a PM2 user's file runs.
	pm2Ignored
)

// keyInfo describes one app key.
type keyInfo struct {
	kind keyKind
	// canonical is the implemented key an alias stands for.
	canonical string
	// note is added to the warning for later and pm2Ignored keys.
	note string
}

// appKeys is every key an app entry may have. Keys named env_<NAME> (PM2's
// per-environment env sections) are accepted besides these.
//
// Implemented keys keep PM2's names and meanings; listen, balance, ready,
// stop_signal, log_max_size, log_max_files and the proxy keys are ours.
var appKeys = map[string]keyInfo{
	// Implemented (PM2).
	"name":                      {kind: implemented},
	"script":                    {kind: implemented},
	"args":                      {kind: implemented},
	"interpreter":               {kind: implemented},
	"interpreter_args":          {kind: implemented},
	"cwd":                       {kind: implemented},
	"instances":                 {kind: implemented},
	"exec_mode":                 {kind: implemented},
	"env":                       {kind: implemented},
	"autorestart":               {kind: implemented},
	"stop_exit_codes":           {kind: implemented},
	"max_restarts":              {kind: implemented},
	"start_nice":                {kind: implemented},
	"min_uptime":                {kind: implemented},
	"restart_delay":             {kind: implemented},
	"exp_backoff_restart_delay": {kind: implemented},
	"kill_timeout":              {kind: implemented},
	"listen_timeout":            {kind: implemented},
	"max_memory_restart":        {kind: implemented},
	"wait_ready":                {kind: implemented},
	"uid":                       {kind: implemented},
	"gid":                       {kind: implemented},
	"out_file":                  {kind: implemented},
	"error_file":                {kind: implemented},
	"log_file":                  {kind: implemented},
	"log_date_format":           {kind: implemented},
	// Implemented (ours).
	"listen":        {kind: implemented},
	"balance":       {kind: implemented},
	"ready":         {kind: implemented},
	"stop_signal":   {kind: implemented},
	"log_max_size":  {kind: implemented},
	"log_max_files": {kind: implemented},
	// Implemented (ours): proxy mode, each only with balance: proxy.
	"protocol":     {kind: implemented},
	"proxy_to":     {kind: implemented},
	"sticky":       {kind: implemented},
	"health_check": {kind: implemented},
	"proxy":        {kind: implemented},

	// PM2 aliases of implemented keys.
	"exec_interpreter": {kind: alias, canonical: "interpreter"},
	"node_args":        {kind: alias, canonical: "interpreter_args"},
	"user":             {kind: alias, canonical: "uid"},
	"out":              {kind: alias, canonical: "out_file"},
	"output":           {kind: alias, canonical: "out_file"},
	"out_log":          {kind: alias, canonical: "out_file"},
	"error":            {kind: alias, canonical: "error_file"},
	"err":              {kind: alias, canonical: "error_file"},
	"err_file":         {kind: alias, canonical: "error_file"},
	"err_log":          {kind: alias, canonical: "error_file"},
	"log":              {kind: alias, canonical: "log_file"},

	// PM2 keys launch does not implement.
	"watch":                      {kind: pm2Ignored},
	"ignore_watch":               {kind: pm2Ignored},
	"watch_options":              {kind: pm2Ignored},
	"watch_delay":                {kind: pm2Ignored},
	"merge_logs":                 {kind: pm2Ignored},
	"combine_logs":               {kind: pm2Ignored},
	"log_type":                   {kind: pm2Ignored},
	"disable_logs":               {kind: pm2Ignored},
	"time":                       {kind: pm2Ignored},
	"pid_file":                   {kind: pm2Ignored},
	"pid":                        {kind: pm2Ignored},
	"source_map_support":         {kind: pm2Ignored},
	"disable_source_map_support": {kind: pm2Ignored},
	"instance_var":               {kind: pm2Ignored, note: "workers get NODE_APP_INSTANCE and LAUNCH_INSTANCE"},
	"increment_var":              {kind: pm2Ignored},
	"vizion":                     {kind: pm2Ignored},
	"autostart":                  {kind: pm2Ignored},
	"cron_restart":               {kind: pm2Ignored},
	"cron":                       {kind: pm2Ignored},
	"post_update":                {kind: pm2Ignored},
	"force":                      {kind: pm2Ignored},
	"namespace":                  {kind: pm2Ignored},
	"name_prefix":                {kind: pm2Ignored},
	"treekill":                   {kind: pm2Ignored, note: "launch always signals the worker's whole process group"},
	"shutdown_with_message":      {kind: pm2Ignored},
	"pmx":                        {kind: pm2Ignored},
	"automation":                 {kind: pm2Ignored},
	"trace":                      {kind: pm2Ignored},
	"disable_trace":              {kind: pm2Ignored},
	"deep_monitoring":            {kind: pm2Ignored},
	"v8":                         {kind: pm2Ignored},
	"event_loop_inspector":       {kind: pm2Ignored},
	"io":                         {kind: pm2Ignored},
	"filter_env":                 {kind: pm2Ignored},
	"append_env_to_name":         {kind: pm2Ignored},
	"kill_retry_time":            {kind: pm2Ignored},
	"install_url":                {kind: pm2Ignored},
	"execute_command":            {kind: pm2Ignored},
	"username":                   {kind: pm2Ignored},
	"windowsHide":                {kind: pm2Ignored},
	"write":                      {kind: pm2Ignored},
	"port":                       {kind: pm2Ignored, note: "launch sets PORT from the first listen address"},
}

// topKeys are the keys of the file's top-level mapping (besides x-*
// keys, which are ignored). apps is PM2's; metrics, shutdown_delay and
// sample_interval are ours and set File's fields of the same names.
var topKeys = map[string]keyInfo{
	"apps":            {kind: implemented},
	"metrics":         {kind: implemented},
	"shutdown_delay":  {kind: implemented},
	"sample_interval": {kind: implemented},
	"deploy":          {kind: pm2Ignored},
}

// appKeyNames and topKeyNames are the keys of appKeys and topKeys, sorted,
// for did-you-mean.
var (
	appKeyNames = keyNames(appKeys)
	topKeyNames = keyNames(topKeys)
)

// listenKeys are the keys of a listen entry written as a mapping.
var listenKeys = []string{"address", "name", "mode"}

// proxyKeys are the keys of an app's proxy: mapping.
var proxyKeys = []string{"strategy", "max_conns", "read_timeout", "write_timeout", "idle_timeout", "max_header_size"}

// healthCheckKeys are the keys of an app's health_check: mapping.
var healthCheckKeys = []string{"path", "interval", "timeout"}

// envSectionPrefix starts PM2's per-environment env sections (env_production).
const envSectionPrefix = "env_"

// keyNames returns the keys of a key table, sorted.
func keyNames(table map[string]keyInfo) []string {
	names := make([]string, 0, len(table))
	for k := range table {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// didYouMean returns `did you mean "x"?` for the candidate nearest to word,
// or "" when none is near enough to be a likely typo. Case, '-' and '_' are
// ignored ("execMode" and "exec-mode" both suggest "exec_mode"), and a swap
// of two neighbouring letters counts as one edit.
func didYouMean(word string, candidates []string) string {
	w := normalizeKey(word)
	if w == "" {
		return ""
	}
	limit := 1
	if len(w) >= 6 {
		limit = 2
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if d := editDistance(w, normalizeKey(c), limit+1); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || best == word {
		return ""
	}
	return "did you mean " + quote(best) + "?"
}

// normalizeKey lowercases s and drops '_' and '-'.
func normalizeKey(s string) string {
	s = strings.ToLower(s)
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return r
	}, s)
}

// editDistance is the optimal-string-alignment distance between a and b
// (insertions, deletions, substitutions and swaps of neighbours each cost
// one), or max when it is at least max: long inputs stop early.
func editDistance(a, b string, max int) int {
	if d := len(a) - len(b); d >= max || -d >= max {
		return max
	}
	if len(a) > 64 || len(b) > 64 {
		return max // no key is this long; don't spend time on it
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(b)], max)
}
