package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file parses the value syntaxes of the app file from text: durations,
// memory sizes, signals, socket modes and shell-like argument strings. The
// functions know nothing of YAML; decode.go calls them with a scalar's text.

// parseMillis parses an integer count of milliseconds (PM2's unit),
// optionally signed, as a duration.
func parseMillis(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			if strings.HasPrefix(s, "-") {
				return 0, errors.New("must not be negative")
			}
			return 0, errors.New("is too large")
		}
		return 0, errors.New("is not a whole number of milliseconds")
	}
	return millis(n)
}

// millis turns a count of milliseconds into a duration, rejecting negative
// and overflowing counts.
func millis(n int64) (time.Duration, error) {
	if n < 0 {
		return 0, errors.New("must not be negative")
	}
	if n > math.MaxInt64/int64(time.Millisecond) {
		return 0, errors.New("is too large")
	}
	return time.Duration(n) * time.Millisecond, nil
}

// parseDuration parses a duration written as text: a whole number of
// milliseconds ("1500") or a Go duration ("1.5s", "200ms", "1h30m").
// Negative durations are rejected.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("is empty")
	}
	if isInteger(s) {
		return parseMillis(s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New(`must be milliseconds (1500) or a duration with a unit ("1.5s", "200ms", "2m")`)
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

// isInteger reports whether s is an optionally signed run of digits.
func isInteger(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// memoryUnits maps a unit suffix, lowercased, to its multiplier. K, M, G
// and T are powers of 1024, as in PM2; "MB" and "MiB" mean the same.
var memoryUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// errMemory is the message for memory text that does not parse.
var errMemory = errors.New(`must be bytes (536870912) or a size with a unit ("512M", "1.5G", "100K")`)

// parseMemory parses a memory size: a number of bytes, or a number with
// a unit K, M, G or T (powers of 1024, optionally followed by B or iB, any
// case): "512M", "1.5G", "100kb".
func parseMemory(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == '-' || s[i] == '+') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := memoryUnits[unit]
	if num == "" || !ok {
		return 0, errMemory
	}
	if strings.HasPrefix(num, "-") {
		return 0, errors.New("must not be negative")
	}
	if isInteger(num) && mult == 1 {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, errors.New("is too large")
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errMemory
	}
	f *= mult
	if f >= math.MaxInt64 {
		return 0, errors.New("is too large")
	}
	return int64(math.Round(f)), nil
}

// signals are the stop signals launch knows by name.
var signals = map[string]syscall.Signal{
	"HUP":   syscall.SIGHUP,
	"INT":   syscall.SIGINT,
	"QUIT":  syscall.SIGQUIT,
	"KILL":  syscall.SIGKILL,
	"USR1":  syscall.SIGUSR1,
	"USR2":  syscall.SIGUSR2,
	"TERM":  syscall.SIGTERM,
	"WINCH": syscall.SIGWINCH,
}

// errSignal is the message for a signal that does not parse.
var errSignal = errors.New("must be a signal name (SIGTERM, TERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGKILL) or number (1-64)")

// parseSignal parses "SIGTERM", "TERM", "sigint" or a number from 1 to 64.
func parseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimSpace(s)
	if isInteger(s) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 64 {
			return 0, errSignal
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	return 0, errSignal
}

// parseMode parses a unix socket's permission bits, written in octal
// ("0660", "660", "0o660"), at most 0777.
func parseMode(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, errors.New(`must be octal permission bits such as "0660" (at most 0777)`)
	}
	return uint32(n), nil
}

// splitArgs splits a command line into words the way a POSIX shell does,
// without expansions: blanks separate words; single quotes keep everything
// up to the next single quote; double quotes keep everything up to the next
// unescaped double quote, where a backslash escapes only $ ` " \ and
// newline; elsewhere a backslash keeps the next character. `a "b c"\ d`
// gives [a, b c d].
func splitArgs(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			i++
			if i == len(s) {
				return nil, errors.New("ends with a lone backslash")
			}
			if s[i] != '\n' { // backslash-newline joins lines
				word.WriteByte(s[i])
			}
		case c == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("has a single quote (') that is never closed")
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inWord = true
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				word.WriteByte(s[i])
			}
			if !closed {
				return nil, errors.New(`has a double quote (") that is never closed`)
			}
		default:
			inWord = true
			word.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}
