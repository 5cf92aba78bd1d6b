// Package config owns the app file: it reads YAML, JSON and PM2's
// ecosystem.config.js, checks every key, applies PM2's defaults (and
// launch's own), and resolves what can be resolved before anything runs:
// the command line, the working directory, the user, the listen addresses,
// the readiness rule.
//
// Invariant: a *File returned without error is fully validated and
// defaulted; nothing downstream re-checks it or applies a default again.
//
// Every problem is an *Error naming the file, line, column, app and key,
// what would have been accepted and, for a misspelt key, the nearest real
// one. Parse reports as many problems as it finds, in file order (Errors,
// at most 20). PM2 keys launch does not implement are accepted with one
// warning each in File.Warnings, so a PM2 user's file runs; keys.go holds
// the table of keys. As in PM2, a key whose value is null counts as not
// given. Beside apps, the top level may hold launch's metrics,
// shutdown_delay and sample_interval (File's fields); top-level keys
// starting with "x-" are ignored, to give YAML anchors a home
// (x-defaults: &defaults).
//
// Diff names the keys whose resolved values differ between two Apps, for
// reload messages.
//
// The package touches the system only to resolve paths (is the script a
// file in cwd?), to look up users and groups (uid, gid), and to run node
// for a .js file. It imports nothing else of launch.
package config
