package multilang

import (
	"maps"
	"strings"
	"testing"
)

func TestParsePropertiesReadsTheJavaFormat(t *testing.T) {
	tests := map[string]struct {
		text string
		want map[string]string
	}{
		"the blog's sample file": {
			text: "# The script that abides by the multi-language protocol.\n" +
				"executableName = sample_kclpy_app.py\n" +
				"streamName = kclpysample\n" +
				"applicationName = PythonKCLSample\n" +
				"AwsCredentialsProvider = DefaultCredentialsProvider\n" +
				"processingLanguage = python/3.8\n" +
				"initialPositionInStream = TRIM_HORIZON\n" +
				"regionName = us-east-1\n",
			want: map[string]string{"executableName": "sample_kclpy_app.py", "streamName": "kclpysample",
				"applicationName": "PythonKCLSample", "AwsCredentialsProvider": "DefaultCredentialsProvider",
				"processingLanguage": "python/3.8", "initialPositionInStream": "TRIM_HORIZON", "regionName": "us-east-1"},
		},
		"separators": {
			text: "a=1\nb:2\nc 3\nd\t=\t4\n  e  :  5  \nf=\ng\n",
			want: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5  ", "f": "", "g": ""},
		},
		"comments and blank lines": {
			text: "# one\n! two\n\n   \n  # indented\nk=v # not a comment\n",
			want: map[string]string{"k": "v # not a comment"},
		},
		"continuation lines": {
			text: "executableName = python3 \\\n    processor.py \\\n    --verbose\nnext=1\n",
			want: map[string]string{"executableName": "python3 processor.py --verbose", "next": "1"},
		},
		"an escaped backslash does not continue": {
			text: "path=C:\\\\dir\\\\\nnext=1\n",
			want: map[string]string{"path": `C:\dir\`, "next": "1"},
		},
		"escapes": {
			text: "tab=a\\tb\nunicode=\\u00e9t\\u00e9\npair=\\uD83D\\uDE00\nkey\\ with\\=sep=v\n",
			want: map[string]string{"tab": "a\tb", "unicode": "été", "pair": "😀", "key with=sep": "v"},
		},
		"the later key wins": {
			text: "k=1\nk=2\n",
			want: map[string]string{"k": "2"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseProperties(strings.NewReader(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParsePropertiesRefusesAMalformedEscape(t *testing.T) {
	_, err := ParseProperties(strings.NewReader("ok=1\nbad=\\u12\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v, want one naming line 2", err)
	}
}

// FuzzParseProperties: any text parses or is refused, never a panic; what parses, written back with escapes,
// parses to the same properties.
func FuzzParseProperties(f *testing.F) {
	for _, s := range []string{"a=b\n", "a\\\n=b", "\\u", "k=\\uD83D", "#c\n!c\n", "x:y z\n", "\\", " #k=v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		props, err := ParseProperties(strings.NewReader(text))
		if err != nil {
			return
		}
		var written strings.Builder
		for k, v := range props {
			written.WriteString(escapeProperty(k, true) + "=" + escapeProperty(v, false) + "\n")
		}
		again, err := ParseProperties(strings.NewReader(written.String()))
		if err != nil || !maps.Equal(again, props) {
			t.Fatalf("%q parsed to %q; written back as %q it parses to %q (%v)", text, props, written.String(), again, err)
		}
	})
}

// escapeProperty writes s as a key or a value of the properties format.
func escapeProperty(s string, key bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\f':
			b.WriteString(`\f`)
		case key && strings.IndexByte("=: #!", c) >= 0, !key && i == 0 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
