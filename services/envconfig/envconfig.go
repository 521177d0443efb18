// Package envconfig parses the services' settings from environment variables. The producer and the consumer use the
// same Parser, so a variable of either is read, defaulted, validated and reported the same way: every bad value is
// an *Error naming the variable, all of them are reported at once, and a renamed variable is still accepted under
// its old name with a deprecation warning.
package envconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Error is a bad setting: the variable, the value it held and what is accepted.
type Error struct {
	// Name is the environment variable, as the user set it (the old name of a renamed variable).
	Name string
	// Value is what it held, untrimmed.
	Value string
	// Want says what is accepted.
	Want string
}

// Error implements error: the variable, its value and what is accepted.
func (e *Error) Error() string {
	return fmt.Sprintf("%s=%q: %s", e.Name, e.Value, e.Want)
}

// Parser reads variables through a lookup function (os.LookupEnv in main) and collects every bad value. Each
// method returns the variable's value, or its default when it is unset, empty or bad; Err tells whether any was
// bad.
type Parser struct {
	lookup func(string) (string, bool)
	// oldNames maps a variable to the deprecated name it may still be set under.
	oldNames map[string]string
	errs     []error
	warnings []string
}

// NewParser returns a Parser reading through lookup.
func NewParser(lookup func(string) (string, bool)) *Parser {
	return &Parser{lookup: lookup, oldNames: map[string]string{}}
}

// Renamed makes oldName a deprecated spelling of name: when name is unset and oldName is set, oldName's value is
// used and a warning says to rename it. Call it before reading name.
func (p *Parser) Renamed(name, oldName string) {
	p.oldNames[name] = oldName
}

// Err returns every bad value's *Error, joined; nil when all were good.
func (p *Parser) Err() error { return errors.Join(p.errs...) }

// Warnings returns what was accepted but deserves a log line, such as a deprecated variable name.
func (p *Parser) Warnings() []string { return slices.Clone(p.warnings) }

// Invalid records name's value as bad, saying what is wanted: for checks that involve more than one variable or
// more than the value's form.
func (p *Parser) Invalid(name, want string) {
	p.fail(p.get(name), want)
}

// setting is one variable as read: the name it was set under (the deprecated one of a renamed variable), its
// raw value, and that value trimmed of spaces.
type setting struct {
	name, raw, value string
}

// get reads name, or its deprecated spelling when only that is set.
func (p *Parser) get(name string) setting {
	if v, ok := p.lookup(name); ok && v != "" {
		return setting{name, v, strings.TrimSpace(v)}
	}
	if old, ok := p.oldNames[name]; ok {
		if v, ok := p.lookup(old); ok && v != "" {
			if w := fmt.Sprintf("%s is deprecated: rename it to %s", old, name); !slices.Contains(p.warnings, w) {
				p.warnings = append(p.warnings, w)
			}
			return setting{old, v, strings.TrimSpace(v)}
		}
	}
	return setting{name: name}
}

func (p *Parser) fail(s setting, want string) {
	p.errs = append(p.errs, &Error{Name: s.name, Value: s.raw, Want: want})
}

// String returns name's value with surrounding spaces removed, or "" when unset.
func (p *Parser) String(name string) string {
	return p.get(name).value
}

// Required returns name's value, or records an error saying what the variable is for when it is unset.
func (p *Parser) Required(name, what string) string {
	s := p.get(name)
	if s.value == "" {
		p.fail(s, "required: "+what)
	}
	return s.value
}

// Int returns name as a whole number in [lo, hi], or def when unset.
func (p *Parser) Int(name string, def, lo, hi int) int {
	s := p.get(name)
	if s.value == "" {
		return def
	}
	n, err := strconv.Atoi(s.value)
	if err != nil || n < lo || n > hi {
		p.fail(s, fmt.Sprintf("want a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

// Bool returns name as true or false (strconv.ParseBool's spellings), or def when unset.
func (p *Parser) Bool(name string, def bool) bool {
	s := p.get(name)
	if s.value == "" {
		return def
	}
	b, err := strconv.ParseBool(s.value)
	if err != nil {
		p.fail(s, "want true or false")
		return def
	}
	return b
}

// Fraction returns name as a number in (0, 1], such as 0.7, or def when unset.
func (p *Parser) Fraction(name string, def float64) float64 {
	s := p.get(name)
	if s.value == "" {
		return def
	}
	f, err := strconv.ParseFloat(s.value, 64)
	if err != nil || !(f > 0 && f <= 1) {
		p.fail(s, "want a fraction in (0, 1], such as 0.7")
		return def
	}
	return f
}

// Duration returns name as a positive Go duration ("250ms", "30s"), or def when unset.
func (p *Parser) Duration(name string, def time.Duration) time.Duration {
	return p.duration(name, def, false)
}

// DurationOrZero is Duration that also accepts 0 (to turn a wait off).
func (p *Parser) DurationOrZero(name string, def time.Duration) time.Duration {
	return p.duration(name, def, true)
}

func (p *Parser) duration(name string, def time.Duration, zeroOK bool) time.Duration {
	s := p.get(name)
	if s.value == "" {
		return def
	}
	d, err := time.ParseDuration(s.value)
	if err != nil || d < 0 || (d == 0 && !zeroOK) {
		want := "want a positive Go duration such as 250ms or 30s"
		if zeroOK {
			want = "want a Go duration >= 0 such as 0s or 5s"
		}
		p.fail(s, want)
		return def
	}
	return d
}

// Choice returns name's value when it is one of choices, or def when unset.
func (p *Parser) Choice(name, def string, choices ...string) string {
	s := p.get(name)
	switch {
	case s.value == "":
		return def
	case slices.Contains(choices, s.value):
		return s.value
	}
	p.fail(s, "want "+orList(choices))
	return def
}

// URL returns name's value when it is an http:// or https:// URL, or "" when unset.
func (p *Parser) URL(name string) string {
	s := p.get(name)
	if s.value != "" && !strings.HasPrefix(s.value, "http://") && !strings.HasPrefix(s.value, "https://") {
		p.fail(s, "want an http:// or https:// URL")
		return ""
	}
	return s.value
}

// Time returns name as an RFC 3339 time, or the zero time when unset and not required. requiredBecause, when not
// empty, makes the variable required and says why ("with INITIAL_POSITION=AT_TIMESTAMP").
func (p *Parser) Time(name, requiredBecause string) time.Time {
	s := p.get(name)
	if s.value == "" && requiredBecause == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s.value)
	if err != nil {
		want := "want an RFC 3339 time such as 2024-01-02T15:04:05Z"
		if requiredBecause != "" {
			want += " " + requiredBecause
		}
		p.fail(s, want)
		return time.Time{}
	}
	return t
}

// Level returns name as a log level (debug, info, warn, error), or info when unset.
func (p *Parser) Level(name string) slog.Level {
	s := p.get(name)
	if s.value == "" {
		return slog.LevelInfo
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s.value)); err != nil {
		p.fail(s, "want debug, info, warn or error")
		return slog.LevelInfo
	}
	return l
}

// orList writes choices as "a, b or c".
func orList(choices []string) string {
	if len(choices) <= 1 {
		return strings.Join(choices, "")
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// Lookup returns a lookup function over env, for tests and for settings that come from a file instead of the
// process environment.
func Lookup(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}
