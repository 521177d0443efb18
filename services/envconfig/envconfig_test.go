package envconfig

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParserReadsEachKindOfValue(t *testing.T) {
	const name = "SETTING"
	tests := map[string]struct {
		value   string // "" leaves the variable unset
		read    func(p *Parser) any
		want    any
		wantBad string // what the error says is wanted; "" for no error
	}{
		"string trimmed":       {value: " a b ", read: func(p *Parser) any { return p.String(name) }, want: "a b"},
		"required set":         {value: "s", read: func(p *Parser) any { return p.Required(name, "the stream") }, want: "s"},
		"required unset":       {read: func(p *Parser) any { return p.Required(name, "the stream") }, want: "", wantBad: "required: the stream"},
		"int default":          {read: func(p *Parser) any { return p.Int(name, 7, 1, 10) }, want: 7},
		"int in range":         {value: "10", read: func(p *Parser) any { return p.Int(name, 7, 1, 10) }, want: 10},
		"int above range":      {value: "11", read: func(p *Parser) any { return p.Int(name, 7, 1, 10) }, want: 7, wantBad: "from 1 to 10"},
		"int not a number":     {value: "many", read: func(p *Parser) any { return p.Int(name, 7, 1, 10) }, want: 7, wantBad: "whole number"},
		"bool default":         {read: func(p *Parser) any { return p.Bool(name, true) }, want: true},
		"bool set":             {value: "false", read: func(p *Parser) any { return p.Bool(name, true) }, want: false},
		"bool bad":             {value: "maybe", read: func(p *Parser) any { return p.Bool(name, true) }, want: true, wantBad: "true or false"},
		"fraction":             {value: "0.7", read: func(p *Parser) any { return p.Fraction(name, 0.5) }, want: 0.7},
		"fraction as percent":  {value: "70", read: func(p *Parser) any { return p.Fraction(name, 0.5) }, want: 0.5, wantBad: "fraction in (0, 1]"},
		"fraction zero":        {value: "0", read: func(p *Parser) any { return p.Fraction(name, 0.5) }, want: 0.5, wantBad: "fraction in (0, 1]"},
		"duration":             {value: "250ms", read: func(p *Parser) any { return p.Duration(name, time.Second) }, want: 250 * time.Millisecond},
		"duration zero":        {value: "0s", read: func(p *Parser) any { return p.Duration(name, time.Second) }, want: time.Second, wantBad: "positive"},
		"duration negative":    {value: "-1s", read: func(p *Parser) any { return p.Duration(name, time.Second) }, want: time.Second, wantBad: "positive"},
		"duration no unit":     {value: "100", read: func(p *Parser) any { return p.Duration(name, time.Second) }, want: time.Second, wantBad: "Go duration"},
		"duration or zero":     {value: "0s", read: func(p *Parser) any { return p.DurationOrZero(name, time.Second) }, want: time.Duration(0)},
		"duration or zero bad": {value: "-5s", read: func(p *Parser) any { return p.DurationOrZero(name, time.Second) }, want: time.Second, wantBad: ">= 0"},
		"choice default":       {read: func(p *Parser) any { return p.Choice(name, "b", "a", "b") }, want: "b"},
		"choice set":           {value: "a", read: func(p *Parser) any { return p.Choice(name, "b", "a", "b") }, want: "a"},
		"choice bad":           {value: "c", read: func(p *Parser) any { return p.Choice(name, "b", "a", "b", "x") }, want: "b", wantBad: "want a, b or x"},
		"url":                  {value: "http://127.0.0.1:1", read: func(p *Parser) any { return p.URL(name) }, want: "http://127.0.0.1:1"},
		"url without scheme":   {value: "127.0.0.1:1", read: func(p *Parser) any { return p.URL(name) }, want: "", wantBad: "http://"},
		"time":                 {value: "2024-01-02T03:04:05Z", read: func(p *Parser) any { return p.Time(name, "").Unix() }, want: int64(1704164645)},
		"time unset":           {read: func(p *Parser) any { return p.Time(name, "").IsZero() }, want: true},
		"time required unset":  {read: func(p *Parser) any { return p.Time(name, "with X=Y").IsZero() }, want: true, wantBad: "RFC 3339 time such as 2024-01-02T15:04:05Z with X=Y"},
		"level":                {value: "debug", read: func(p *Parser) any { return p.Level(name) }, want: slog.LevelDebug},
		"level bad":            {value: "loud", read: func(p *Parser) any { return p.Level(name) }, want: slog.LevelInfo, wantBad: "debug, info"},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			// GIVEN the variable set to the value (or unset)
			env := map[string]string{}
			if tc.value != "" {
				env[name] = tc.value
			}
			p := NewParser(Lookup(env))
			// WHEN it is read
			got := tc.read(p)
			// THEN the value is the parsed one (or the default), and a bad value is an *Error that names the
			// variable, quotes the value and says what is wanted
			if got != tc.want {
				t.Errorf("read %v (%T), want %v (%T)", got, got, tc.want, tc.want)
			}
			err := p.Err()
			if tc.wantBad == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var bad *Error
			if !errors.As(err, &bad) || bad.Name != name || bad.Value != tc.value || !strings.Contains(bad.Want, tc.wantBad) {
				t.Fatalf("error %v, want an *Error naming %s=%q and saying %q", err, name, tc.value, tc.wantBad)
			}
			if !strings.HasPrefix(err.Error(), name+"=") {
				t.Errorf("error %q does not start with the variable", err)
			}
		})
	}
}

func TestParserReportsEveryBadValue(t *testing.T) {
	// GIVEN three bad values
	p := NewParser(Lookup(map[string]string{"A": "x", "B": "y"}))
	// WHEN they are read
	p.Int("A", 1, 1, 2)
	p.Duration("B", time.Second)
	p.Required("C", "the third")
	// THEN one error names all three
	err := p.Err()
	for _, name := range []string{"A=", "B=", "C="} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}

func TestRenamedVariableIsReadUnderItsOldNameWithAWarning(t *testing.T) {
	tests := map[string]struct {
		env          map[string]string
		want         time.Duration
		wantWarnings int
	}{
		"new name":            {map[string]string{"NEW": "2s"}, 2 * time.Second, 0},
		"old name":            {map[string]string{"OLD": "3s"}, 3 * time.Second, 1},
		"both: new name wins": {map[string]string{"OLD": "3s", "NEW": "2s"}, 2 * time.Second, 0},
		"neither":             {map[string]string{}, time.Second, 0},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			// GIVEN NEW, formerly OLD
			p := NewParser(Lookup(tc.env))
			p.Renamed("NEW", "OLD")
			// WHEN NEW is read (twice, as a parser may)
			got := p.Duration("NEW", time.Second)
			p.Duration("NEW", time.Second)
			// THEN the old name's value is used, with one warning naming both
			if got != tc.want || p.Err() != nil {
				t.Errorf("read %v, %v; want %v", got, p.Err(), tc.want)
			}
			w := p.Warnings()
			if len(w) != tc.wantWarnings || (len(w) == 1 && w[0] != "OLD is deprecated: rename it to NEW") {
				t.Errorf("warnings %q, want %d naming OLD and NEW", w, tc.wantWarnings)
			}
		})
	}
}

func TestInvalidNamesTheOldNameAndRawValue(t *testing.T) {
	// GIVEN a renamed variable set under its old name, with spaces
	p := NewParser(Lookup(map[string]string{"OLD": " 9s "}))
	p.Renamed("NEW", "OLD")
	// WHEN a cross-variable check rejects it
	p.Invalid("NEW", "want less than 5s")
	// THEN the error names what the user set, as they set it
	var bad *Error
	if !errors.As(p.Err(), &bad) || bad.Name != "OLD" || bad.Value != " 9s " {
		t.Fatalf("error %v, want OLD=\" 9s \"", p.Err())
	}
}

func TestAWSUsesLocalDefaultsOnlyWithAnEndpointOverride(t *testing.T) {
	tests := map[string]struct {
		env        map[string]string
		local      bool
		wantRegion string
		wantCreds  bool
	}{
		"AWS":                     {map[string]string{}, false, "", false},
		"AWS with a region":       {map[string]string{EnvRegion: "eu-west-1"}, false, "eu-west-1", false},
		"emulator":                {map[string]string{}, true, LocalRegion, true},
		"emulator, region set":    {map[string]string{EnvRegion: "eu-west-1"}, true, "eu-west-1", true},
		"emulator, old region":    {map[string]string{envDefaultRegion: "eu-west-1"}, true, "", true},
		"emulator, access key":    {map[string]string{envAccessKeyID: "AK"}, true, LocalRegion, false},
		"emulator, named profile": {map[string]string{envProfile: "dev"}, true, LocalRegion, false},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			a := NewParser(Lookup(tc.env)).AWS(tc.local)
			if a.Region != tc.wantRegion || a.LocalCredentials != tc.wantCreds {
				t.Errorf("AWS = %+v, want region %q, local credentials %v", a, tc.wantRegion, tc.wantCreds)
			}
		})
	}
}
