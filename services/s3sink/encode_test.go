package s3sink

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/kcl"
)

// sampleRecords are records whose values exercise the encodings: every byte value, an empty payload, JSON's
// special characters and non-ASCII text in partition keys, and sub-millisecond arrival times.
func sampleRecords() []kcl.Record {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	at := time.Date(2025, 7, 1, 13, 4, 5, 678_901_234, time.UTC)
	keys := []string{"plain", `quote " and \ backslash`, "tab\tnew line\ncontrol\x01", "ünïcødé 🦆", "<html>&"}
	payloads := [][]byte{every, {}, []byte(`{"json":"text"}`), bytes.Repeat([]byte("long "), 10_000), []byte("\x00")}
	var out []kcl.Record
	for i := range 50 {
		out = append(out, kcl.Record{
			ShardID: "shardId-000000000003", SequenceNumber: "49661234567890123456789012345678901234567890123456789012",
			SubSequenceNumber: int64(i), PartitionKey: keys[i%len(keys)], Data: slices.Clone(payloads[i%len(payloads)]),
			ApproximateArrivalTimestamp: at.Add(time.Duration(i) * time.Second),
		})
	}
	return out
}

// wantRows is what an object of records must hold: arrival times to the millisecond, as the objects keep them.
func wantRows(records []kcl.Record) []Row {
	out := make([]Row, len(records))
	for i, r := range records {
		out[i] = Row{ShardID: r.ShardID, SequenceNumber: r.SequenceNumber, SubSequenceNumber: r.SubSequenceNumber,
			PartitionKey: r.PartitionKey, ApproximateArrivalTimestamp: r.ApproximateArrivalTimestamp.Truncate(time.Millisecond),
			Data: slices.Clone(r.Data)}
	}
	return out
}

// encodeObject encodes records as one object of format f, in two batches whose payloads are overwritten once
// written (the worker reuses them), and returns the object's bytes.
func encodeObject(t testing.TB, f Format, records []kcl.Record) []byte {
	t.Helper()
	dir := t.TempDir()
	file, err := os.Create(filepath.Join(dir, "object"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	enc := newEncoder(f, file, dir)
	half := len(records) / 2
	for _, part := range [][]kcl.Record{records[:half], records[half:]} {
		if err := enc.write(part); err != nil {
			t.Fatal(err)
		}
		for _, r := range part {
			for i := range r.Data {
				r.Data[i] = '!'
			}
		}
	}
	if err := enc.finish(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestObjectsReadBackWithEveryColumn(t *testing.T) {
	for _, f := range []Format{FormatParquet, FormatNDJSON} {
		t.Run(string(f), func(t *testing.T) {
			// GIVEN records with every kind of value, encoded as one object
			records := sampleRecords()
			want := wantRows(records)
			b := encodeObject(t, f, records)
			// WHEN the object is read back (parquet-go's reader; encoding/json for NDJSON)
			got, err := ReadRows(bytes.NewReader(b), int64(len(b)), f)
			if err != nil {
				t.Fatal(err)
			}
			// THEN every record comes back, every column right
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for i := range want {
				checkRow(t, i, got[i], want[i])
			}
		})
	}
}

// checkRow fails t unless got and want hold the same values, naming the columns that differ.
func checkRow(t *testing.T, i int, got, want Row) {
	t.Helper()
	got, want = normalized(got), normalized(want)
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for f := range g.NumField() {
		if !reflect.DeepEqual(g.Field(f).Interface(), w.Field(f).Interface()) {
			t.Errorf("row %d: %s = %.80v, want %.80v", i, g.Type().Field(f).Name, g.Field(f).Interface(), w.Field(f).Interface())
		}
	}
}

// normalized makes rows comparable: nil and empty payloads are the same, and times compare as instants in UTC.
func normalized(r Row) Row {
	if len(r.Data) == 0 {
		r.Data = nil
	}
	r.ApproximateArrivalTimestamp = r.ApproximateArrivalTimestamp.UTC()
	return r
}

func TestNDJSONLinesReadWithEncodingJSON(t *testing.T) {
	// GIVEN an NDJSON object
	records := sampleRecords()
	rows := wantRows(records)
	b := encodeObject(t, FormatNDJSON, records)
	// WHEN it is read with compress/gzip and encoding/json alone, into generic values
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(gz)
	var lines []map[string]any
	for dec.More() {
		var line map[string]any
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("line %d: %v", len(lines)+1, err)
		}
		lines = append(lines, line)
	}
	// THEN each line has exactly the six fields, with JSON types Athena's JSON SerDe reads
	if len(lines) != len(records) {
		t.Fatalf("%d lines, want %d", len(lines), len(records))
	}
	for i, w := range rows {
		want := map[string]any{
			"shard_id": w.ShardID, "sequence_number": w.SequenceNumber, "sub_sequence_number": float64(w.SubSequenceNumber),
			"partition_key": w.PartitionKey, "approximate_arrival_timestamp": w.ApproximateArrivalTimestamp.Format("2006-01-02T15:04:05.000Z"),
			"data": base64.StdEncoding.EncodeToString(w.Data),
		}
		for field, v := range want {
			if !reflect.DeepEqual(lines[i][field], v) {
				t.Errorf("line %d: %s = %.80v, want %.80v", i+1, field, lines[i][field], v)
			}
		}
		if len(lines[i]) != len(want) {
			t.Errorf("line %d has fields %v, want exactly %d", i+1, slices.Sorted(maps.Keys(lines[i])), len(want))
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\x1f\x7f", "ü🦆", "\xff\xfe bad", "\u2028<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// GIVEN any string, WHEN appended as a JSON string
		b := appendJSONString(nil, s)
		// THEN it is valid JSON and decodes to what encoding/json's own encoding of s decodes to
		var got, want string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: not JSON: %v", s, b, err)
		}
		ref, _ := json.Marshal(s)
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("appendJSONString(%q) decodes to %q, want %q", s, got, want)
		}
	})
}
