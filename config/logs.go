package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Log rotation defaults (launch's own keys log_max_size and log_max_files).
const (
	defaultLogMaxSize  = 10 << 20
	defaultLogMaxFiles = 5
	// minLogMaxSize is the smallest rotation size other than 0 (never):
	// a smaller one would rotate on nearly every line.
	minLogMaxSize = 1 << 10
	// maxLogFiles bounds log_max_files; a larger count is almost
	// certainly a typo.
	maxLogFiles = 10000
)

// noLogFile are the values PM2 takes for "write no log file".
var noLogFile = map[string]bool{"/dev/null": true, "NULL": true}

// errLogPath says which log file values are accepted.
var errLogPath = errors.New(`must be a file path, or "/dev/null" or "NULL" for no file`)

// logs reads the log keys: out_file, error_file, log_file,
// log_date_format, log_max_size and log_max_files.
func (a *appDecoder) logs() {
	out := a.logPath("out_file", &a.app.OutFile)
	errf := a.logPath("error_file", &a.app.ErrorFile)
	if log := a.logPath("log_file", &a.app.LogFile); log.val != nil && a.app.LogFile != "" {
		for _, other := range []struct {
			p    pair
			path string
		}{{out, a.app.OutFile}, {errf, a.app.ErrorFile}} {
			if other.p.val != nil && other.path == a.app.LogFile {
				a.fail(log.key, log.name, "is the same file as "+other.p.name+atLine(" (line %d)", other.p.key)+
					", so every line would be written to it twice", "give log_file its own path")
			}
		}
	}
	if p, ok := a.keys["log_date_format"]; ok {
		s, err := nodeString(p.val)
		if err == nil {
			s, err = momentToGo(s)
		}
		if err != nil {
			a.bad(p, err, "")
		} else {
			a.app.LogDateFormat = s
		}
	}
	if p, ok := a.keys["log_max_size"]; ok {
		n, err := nodeMemory(p.val)
		switch {
		case err != nil:
			a.bad(p, err, "")
		case n > 0 && n < minLogMaxSize:
			a.fail(p.key, p.name, fmt.Sprintf("must be 0 (never rotate) or at least 1K (got %s)", describe(p.val)), "")
		default:
			a.app.LogMaxSize = n
		}
	}
	if p, ok := a.keys["log_max_files"]; ok {
		n, err := nodeInt(p.val)
		switch {
		case err != nil:
			a.bad(p, err, "")
		case n < 0 || n > maxLogFiles:
			a.fail(p.key, p.name, fmt.Sprintf("must be from 0 to %d rotated files kept (got %s)", maxLogFiles, describe(p.val)), "")
		default:
			a.app.LogMaxFiles = int(n)
		}
	}
}

// logPath reads one log file key into v: an absolute path (a relative
// one is resolved against the app file's directory), or "" for no file.
// It returns the pair read, zero when the key was not given.
func (a *appDecoder) logPath(key string, v *string) pair {
	p, ok := a.keys[key]
	if !ok {
		return pair{}
	}
	if b, err := nodeBool(p.val); err == nil {
		switch {
		case !b: // PM2's false: no file
		case key == "log_file":
			// PM2's log_file: true writes ~/.pm2/logs/<name>.log; launch
			// has no log directory of its own.
			a.warn(p.key, a.label, "log_file:true:"+a.label, "log_file: true asks for PM2's default log path, which launch does not have; no combined log is written (give a path to have one)")
		default:
			a.bad(p, errLogPath, "")
		}
		return p
	}
	s, err := nodeString(p.val)
	switch {
	case err != nil:
		a.bad(p, errLogPath, "")
	case strings.TrimSpace(s) == "":
		a.fail(p.key, p.name, "must not be empty", `leave it out, or write "/dev/null", for no file`)
	case strings.IndexByte(s, 0) >= 0:
		a.fail(p.key, p.name, "must not contain a NUL byte", "")
	case noLogFile[s]:
		*v = ""
	case strings.HasSuffix(s, "/") || strings.HasSuffix(s, "/.") || strings.HasSuffix(s, "/.."):
		a.fail(p.key, p.name, "names a directory (got "+quote(s)+")", "give a file name, such as "+strings.TrimSuffix(s, "/")+"/"+key[:strings.IndexByte(key, '_')]+".log")
	case filepath.IsAbs(s):
		*v = filepath.Clean(s)
	default:
		*v = filepath.Join(a.dir, s)
	}
	return p
}

// momentTokens maps the moment.js format tokens launch supports (PM2's
// log_date_format is a moment.js format) to Go layout elements. Go has no
// unpadded 24-hour element, so H prints like HH ("09").
var momentTokens = map[string]string{
	"YYYY": "2006", "YY": "06",
	"MMMM": "January", "MMM": "Jan", "MM": "01", "M": "1",
	"DD": "02", "D": "2",
	"dddd": "Monday", "ddd": "Mon",
	"HH": "15", "H": "15", "hh": "03", "h": "3",
	"mm": "04", "m": "4",
	"ss": "05", "s": "5",
	"SSS": "000", "SS": "00", "S": "0",
	"A": "PM", "a": "pm",
	"ZZ": "-0700", "Z": "-07:00",
}

// momentLetters are the letters moment.js reads as tokens; other letters
// (the T of "YYYY-MM-DDTHH:mm:ss") are printed as they are.
const momentLetters = "MQDdEewWYyGgAaHhkmsSzZXxNL"

// errMomentTokens lists the supported tokens, for messages.
const errMomentTokens = "supported: YYYY YY MMMM MMM MM M DD D dddd ddd HH H hh h mm m ss s SSS SS S A a Z ZZ, and [text] for literal text"

// momentPiece is one element of a moment.js format: a token or literal text.
type momentPiece struct {
	token string // "" for literal text
	text  string // the literal text, or the token's Go layout element
}

// momentToGo converts a moment.js date format, as PM2's log_date_format
// takes, into a Go time layout: "YYYY-MM-DD HH:mm:ss.SSS Z" gives
// "2006-01-02 15:04:05.000 -07:00". Text in [brackets] is literal. A
// format Go's layouts cannot express (Go has no escapes, so a literal
// "Jan" or "5" would be read as a date) is an error, as is an unknown
// token or an empty format.
func momentToGo(format string) (string, error) {
	if strings.TrimSpace(format) == "" {
		return "", errors.New("must not be empty (leave log_date_format out for no timestamp)")
	}
	var pieces []momentPiece
	var layout strings.Builder
	for i := 0; i < len(format); {
		c := format[i]
		switch {
		case c == '[':
			end := strings.IndexByte(format[i+1:], ']')
			if end < 0 {
				return "", errors.New(`has a "[" that is never closed`)
			}
			pieces = append(pieces, momentPiece{text: format[i+1 : i+1+end]})
			i += end + 2
		case strings.IndexByte(momentLetters, c) >= 0:
			j := i
			for j < len(format) && format[j] == c {
				j++
			}
			run := format[i:j]
			if j < len(format) && format[j] == 'o' { // Do, Mo: ordinals
				run += "o"
			}
			elem, ok := momentTokens[run]
			if !ok {
				return "", fmt.Errorf("has the token %s, which launch does not support (%s)", quote(run), errMomentTokens)
			}
			if c == 'S' {
				if l := layout.String(); !strings.HasSuffix(l, ".") && !strings.HasSuffix(l, ",") {
					return "", fmt.Errorf(`has %s (fractions of a second) without a "." or "," right before it, which Go's time layouts need`, quote(run))
				}
			}
			pieces = append(pieces, momentPiece{token: run, text: elem})
			i = j
		default:
			j := i + 1
			for j < len(format) && format[j] != '[' && strings.IndexByte(momentLetters, format[j]) < 0 {
				j++
			}
			pieces = append(pieces, momentPiece{text: format[i:j]})
			i = j
		}
		layout.WriteString(pieces[len(pieces)-1].text)
	}
	for _, p := range pieces {
		if p.token == "" && !printsAsIs(p.text) {
			return "", fmt.Errorf("has the text %s, which Go's time layouts would read as a date or time (they have no escapes)", quote(p.text))
		}
	}
	l := layout.String()
	for _, t := range momentProbes {
		if got, want := t.Format(l), renderMoment(pieces, t); got != want {
			return "", fmt.Errorf("cannot be written as a Go time layout: its tokens run together (Go would print %s where the format means %s)", quote(got), quote(want))
		}
	}
	return l, nil
}

// momentProbes are times whose every field differs from Go's reference
// time (Mon Jan 2 15:04:05 2006 -0700 MST) and between the two, in width
// too, so formatting them shows any text Go would read as a layout element.
var momentProbes = []time.Time{
	time.Date(2023, time.March, 14, 9, 7, 8, 123456789, time.FixedZone("XYZ", 90*60)),
	time.Date(2031, time.November, 28, 21, 47, 59, 987654321, time.FixedZone("QRS", -5*3600)),
}

// printsAsIs reports whether Go formats text as a layout unchanged: it
// holds no layout element.
func printsAsIs(text string) bool {
	for _, t := range momentProbes {
		if t.Format(text) != text {
			return false
		}
	}
	return true
}

// renderMoment formats t the way the moment.js pieces mean (with H padded,
// as launch documents), to check the Go layout against.
func renderMoment(pieces []momentPiece, t time.Time) string {
	var b strings.Builder
	h12 := t.Hour() % 12
	if h12 == 0 {
		h12 = 12
	}
	_, offset := t.Zone()
	sign := '+'
	if offset < 0 {
		sign, offset = '-', -offset
	}
	for _, p := range pieces {
		switch p.token {
		case "":
			b.WriteString(p.text)
		case "YYYY":
			fmt.Fprintf(&b, "%04d", t.Year())
		case "YY":
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case "MMMM":
			b.WriteString(t.Month().String())
		case "MMM":
			b.WriteString(t.Month().String()[:3])
		case "MM":
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case "M":
			fmt.Fprintf(&b, "%d", int(t.Month()))
		case "DD":
			fmt.Fprintf(&b, "%02d", t.Day())
		case "D":
			fmt.Fprintf(&b, "%d", t.Day())
		case "dddd":
			b.WriteString(t.Weekday().String())
		case "ddd":
			b.WriteString(t.Weekday().String()[:3])
		case "HH", "H":
			fmt.Fprintf(&b, "%02d", t.Hour())
		case "hh":
			fmt.Fprintf(&b, "%02d", h12)
		case "h":
			fmt.Fprintf(&b, "%d", h12)
		case "mm":
			fmt.Fprintf(&b, "%02d", t.Minute())
		case "m":
			fmt.Fprintf(&b, "%d", t.Minute())
		case "ss":
			fmt.Fprintf(&b, "%02d", t.Second())
		case "s":
			fmt.Fprintf(&b, "%d", t.Second())
		case "SSS", "SS", "S":
			b.WriteString(fmt.Sprintf("%09d", t.Nanosecond())[:len(p.token)])
		case "A", "a":
			ampm := "AM"
			if t.Hour() >= 12 {
				ampm = "PM"
			}
			if p.token == "a" {
				ampm = strings.ToLower(ampm)
			}
			b.WriteString(ampm)
		case "Z":
			fmt.Fprintf(&b, "%c%02d:%02d", sign, offset/3600, offset%3600/60)
		case "ZZ":
			fmt.Fprintf(&b, "%c%02d%02d", sign, offset/3600, offset%3600/60)
		}
	}
	return b.String()
}
