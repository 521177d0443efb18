package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/streamproc/streamproc/services/kpl"
)

// checkDecoded checks the invariants of every record a decoder accepts or
// refuses: accepted records have data and valid keys; refusals are 4xx with
// a message.
func checkDecoded(t *testing.T, rec kpl.Record, rerr *requestError) {
	t.Helper()
	if rerr != nil {
		if rerr.status < 400 || rerr.status > 499 || rerr.msg == "" {
			t.Fatalf("refusal %d %q: want a 4xx with a message", rerr.status, rerr.msg)
		}
		return
	}
	if len(rec.Data) == 0 {
		t.Fatal("accepted a record without data")
	}
	if n := utf8.RuneCountInString(rec.PartitionKey); rec.PartitionKey != "" && n > MaxPartitionKeyChars {
		t.Fatalf("accepted a partition key of %d characters", n)
	}
	if rec.ExplicitHashKey != "" && validateExplicitHashKey(rec.ExplicitHashKey) != nil {
		t.Fatalf("accepted explicit hash key %q", rec.ExplicitHashKey)
	}
}

func FuzzDecodeSingle(f *testing.F) {
	for _, seed := range []string{
		`{"data":"hello"}`,
		`{"data":{"a":[1,2,{"b":null}]},"partitionKey":"k"}`,
		`{"data":"caf\u00e9\n","explicitHashKey":"340282366920938463463374607431768211455"}`,
		`{"data":12e3}`, `{"data":""}`, `{"data":null}`, `[]`, `{"data":"x"} x`, "{\"data\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec, rerr := decodeSingle(bytes.NewReader(body))
		checkDecoded(t, rec, rerr)
		if rerr != nil {
			return
		}
		// The input was one valid JSON object, so encoding/json agrees.
		var v map[string]json.RawMessage
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		// A string's bytes are what encoding/json decodes; other values
		// are their compact text.
		var raw json.RawMessage
		for k, val := range v {
			if strings.EqualFold(k, "data") {
				if raw != nil {
					return // duplicate keys: which one wins is encoding/json's business
				}
				raw = val
			}
		}
		var want []byte
		if raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			want = []byte(s)
		} else {
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err != nil {
				t.Fatal(err)
			}
			want = b.Bytes()
		}
		if !bytes.Equal(rec.Data, want) {
			t.Fatalf("data = %q, want %q", rec.Data, want)
		}
	})
}

func FuzzDecodeJSONBatch(f *testing.F) {
	for _, seed := range []string{
		`[{"data":"a"},{"data":{"k":1},"partitionKey":"p"}]`,
		`[{"data":"a"},7,{"x":1}]`, `[]`, `[`, `[{"data":"a"}] x`, `{"data":"a"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, rerr := decodeJSONBatch(bytes.NewReader(body), 5)
		if rerr != nil {
			checkDecoded(t, kpl.Record{}, rerr)
			if items != nil {
				t.Fatal("a refused batch returned items")
			}
			return
		}
		if len(items) == 0 || len(items) > 5 {
			t.Fatalf("accepted a batch of %d records, limit 5", len(items))
		}
		for _, it := range items {
			checkDecoded(t, it.rec, it.err)
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(body, &arr); err != nil || len(arr) != len(items) {
			t.Fatalf("accepted %q as %d records; encoding/json: %d, %v", body, len(items), len(arr), err)
		}
	})
}

func FuzzDecodeNDJSONBatch(f *testing.F) {
	for _, seed := range []string{
		"{\"data\":\"a\"}\n{\"data\":\"b\"}\n", "\n\n", "{\"data\":\n", "{\"data\":\"a\"}\r\n 7 \n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, rerr := decodeNDJSONBatch(bytes.NewReader(body), 5)
		if rerr != nil {
			checkDecoded(t, kpl.Record{}, rerr)
			return
		}
		lines := 0
		for line := range bytes.SplitSeq(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				lines++
			}
		}
		if len(items) != lines {
			t.Fatalf("%d records from %d non-blank lines", len(items), lines)
		}
		for _, it := range items {
			checkDecoded(t, it.rec, it.err)
		}
	})
}

func TestBodyLimitErrors(t *testing.T) {
	// A body cut by http.MaxBytesReader is a 413 wherever the cut falls.
	tests := map[string]struct {
		decode func(body *bytes.Reader) *requestError
		body   string
	}{
		"single": {func(b *bytes.Reader) *requestError {
			_, err := decodeSingle(http.MaxBytesReader(nil, readCloser{b}, 10))
			return err
		}, `{"data":"0123456789"}`},
		"JSON batch": {func(b *bytes.Reader) *requestError {
			_, err := decodeJSONBatch(http.MaxBytesReader(nil, readCloser{b}, 10), 500)
			return err
		}, `[{"data":"0123456789"}]`},
		"NDJSON batch": {func(b *bytes.Reader) *requestError {
			_, err := decodeNDJSONBatch(http.MaxBytesReader(nil, readCloser{b}, 10), 500)
			return err
		}, "{\"data\":\"0123456789\"}\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.decode(bytes.NewReader([]byte(tc.body)))
			if err == nil || err.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("got %v, want a 413", err)
			}
		})
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
