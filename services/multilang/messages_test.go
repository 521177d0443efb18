package multilang

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/kcl"
)

func ptr[T any](v T) *T { return &v }

func TestDecodeChildMessage(t *testing.T) {
	tests := map[string]struct {
		line    string
		want    childMessage
		wantErr error
	}{
		"status":                   {line: `{"action":"status","responseFor":"processRecords"}`, want: childMessage{Action: "status", ResponseFor: "processRecords"}},
		"status with spaces":       {line: "  {\"action\" : \"status\", \"responseFor\" : \"initialize\"}\r", want: childMessage{Action: "status", ResponseFor: "initialize"}},
		"checkpoint everything":    {line: `{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}`, want: childMessage{Action: "checkpoint"}},
		"checkpoint without keys":  {line: `{"action":"checkpoint"}`, want: childMessage{Action: "checkpoint"}},
		"checkpoint at a position": {line: `{"action":"checkpoint","sequenceNumber":"4959","subSequenceNumber":3}`, want: childMessage{Action: "checkpoint", SequenceNumber: ptr("4959"), SubSequenceNumber: ptr(int64(3))}},
		"sub-sequence as text":     {line: `{"action":"checkpoint","sequenceNumber":"4959","subSequenceNumber":"7"}`, want: childMessage{Action: "checkpoint", SequenceNumber: ptr("4959"), SubSequenceNumber: ptr(int64(7))}},
		"sequence without sub":     {line: `{"action":"checkpoint","sequenceNumber":"4959"}`, want: childMessage{Action: "checkpoint", SequenceNumber: ptr("4959")}},
		"extra fields ignored":     {line: `{"action":"status","responseFor":"shardEnded","note":1}`, want: childMessage{Action: "status", ResponseFor: "shardEnded"}},
		"stray text":               {line: `Record (Partition Key: k, Sequence Number: 1)`, wantErr: errNotAMessage},
		"empty line":               {line: ``, wantErr: errNotAMessage},
		"a JSON array":             {line: `[1,2]`, wantErr: errNotAMessage},
		"broken JSON":              {line: `{"action":"status"`, wantErr: errNotAMessage},
		"object without action":    {line: `{"level":"info","msg":"hello"}`, wantErr: errNotAMessage},
		"action not a string":      {line: `{"action":7}`, wantErr: errNotAMessage},
		"unknown action":           {line: `{"action":"commit","sequenceNumber":"1"}`, wantErr: errProtocol},
		"a host's action":          {line: `{"action":"initialize","shardId":"s"}`, wantErr: errProtocol},
		"status without target":    {line: `{"action":"status"}`, wantErr: errProtocol},
		"sequence not a string":    {line: `{"action":"checkpoint","sequenceNumber":12}`, wantErr: errProtocol},
		"sub-sequence not a count": {line: `{"action":"checkpoint","sequenceNumber":"1","subSequenceNumber":1.5}`, wantErr: errProtocol},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := decodeChildMessage([]byte(tc.line))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzDecodeChildMessage: any line decodes to a status or checkpoint, or is refused as errNotAMessage or
// errProtocol; never a panic. A decoded checkpoint's answer is valid JSON that echoes its position.
func FuzzDecodeChildMessage(f *testing.F) {
	for _, seed := range []string{
		`{"action":"status","responseFor":"processRecords"}`,
		`{"action":"checkpoint","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":"12"}`,
		`{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}`,
		`{"action":"shutdown","reason":"ZOMBIE"}`,
		"not json at all", `{"action":`, `{}`, `{"action":"status","responseFor":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := decodeChildMessage(line)
		if err != nil {
			if !errors.Is(err, errNotAMessage) && !errors.Is(err, errProtocol) {
				t.Fatalf("error %v is neither errNotAMessage nor errProtocol", err)
			}
			return
		}
		switch m.Action {
		case actionStatus:
			if m.ResponseFor == "" {
				t.Fatal("status without responseFor accepted")
			}
		case actionCheckpoint:
			var w messageWriter
			var answer struct {
				Action            string  `json:"action"`
				SequenceNumber    *string `json:"sequenceNumber"`
				SubSequenceNumber *int64  `json:"subSequenceNumber"`
				Error             *string `json:"error"`
			}
			out := w.checkpointAnswer(m, errorShutdown)
			if err := json.Unmarshal(out, &answer); err != nil {
				t.Fatalf("answer %q is not JSON: %v", out, err)
			}
			if (m.SequenceNumber == nil) != (answer.SequenceNumber == nil) ||
				(m.SubSequenceNumber == nil) != (answer.SubSequenceNumber == nil) ||
				(m.SubSequenceNumber != nil && *m.SubSequenceNumber != *answer.SubSequenceNumber) {
				t.Fatalf("answer %q does not echo %+v", out, m)
			}
		default:
			t.Fatalf("decoded action %q", m.Action)
		}
	})
}

func TestProcessRecordsMessageIsWhatTheJavaDaemonSends(t *testing.T) {
	// GIVEN records with binary data and keys that need escaping
	arrival := time.UnixMilli(1700000000123)
	in := kcl.ProcessRecordsInput{MillisBehindLatest: 42, Records: []kcl.Record{
		{SequenceNumber: "4959", SubSequenceNumber: 0, PartitionKey: `quote " and \ backslash`, Data: []byte{0, 1, 0xff}, ApproximateArrivalTimestamp: arrival},
		{SequenceNumber: "4959", SubSequenceNumber: 1, PartitionKey: "tab\tnewline\n€", Data: []byte("text"), ApproximateArrivalTimestamp: arrival},
	}}
	// WHEN written
	var w messageWriter
	line := w.processRecords(in)
	// THEN it is one JSON line with the daemon's field names and values
	if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("not one line: %q", line)
	}
	var got struct {
		Action  string `json:"action"`
		Records []struct {
			Action                      string `json:"action"`
			Data                        string `json:"data"`
			PartitionKey                string `json:"partitionKey"`
			SequenceNumber              string `json:"sequenceNumber"`
			SubSequenceNumber           int64  `json:"subSequenceNumber"`
			ApproximateArrivalTimestamp int64  `json:"approximateArrivalTimestamp"`
		} `json:"records"`
		MillisBehindLatest int64 `json:"millisBehindLatest"`
	}
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	if got.Action != "processRecords" || got.MillisBehindLatest != 42 || len(got.Records) != 2 {
		t.Fatalf("message %+v", got)
	}
	for i, r := range got.Records {
		data, err := base64.StdEncoding.DecodeString(r.Data)
		want := in.Records[i]
		if err != nil || !bytes.Equal(data, want.Data) || r.Action != "record" || r.PartitionKey != want.PartitionKey ||
			r.SequenceNumber != want.SequenceNumber || r.SubSequenceNumber != want.SubSequenceNumber ||
			r.ApproximateArrivalTimestamp != arrival.UnixMilli() {
			t.Errorf("record %d = %+v, want %+v", i, r, want)
		}
	}
}

func TestHostMessages(t *testing.T) {
	// The writer reuses its buffer, as the processor sends each message at once: each case copies its line.
	var w messageWriter
	tests := map[string]struct {
		got  string
		want string
	}{
		"initialize": {
			string(w.initialize(kcl.InitializeInput{ShardID: "shardId-000000000001", Checkpoint: "4959", CheckpointSubSequenceNumber: 3})),
			`{"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"4959","subSequenceNumber":3}`},
		"initialize at the start": {
			string(w.initialize(kcl.InitializeInput{ShardID: "s", Checkpoint: kcl.CheckpointTrimHorizon})),
			`{"action":"initialize","shardId":"s","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}`},
		"lease lost":         {string(w.action(actionLeaseLost)), `{"action":"leaseLost"}`},
		"shard ended":        {string(w.action(actionShardEnded)), `{"action":"shardEnded"}`},
		"shutdown requested": {string(w.action(actionShutdownRequested)), `{"action":"shutdownRequested"}`},
		"version 1 zombie":   {string(w.shutdown(reasonZombie)), `{"action":"shutdown","reason":"ZOMBIE"}`},
		"checkpoint answer": {
			string(w.checkpointAnswer(childMessage{SequenceNumber: ptr("12"), SubSequenceNumber: ptr(int64(2))}, "")),
			`{"action":"checkpoint","sequenceNumber":"12","subSequenceNumber":2,"error":null}`},
		"refused checkpoint": {
			string(w.checkpointAnswer(childMessage{}, errorIllegalArgument)),
			`{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":"IllegalArgumentException"}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want+"\n" {
				t.Errorf("wrote %q, want %q", tc.got, tc.want+"\n")
			}
		})
	}
}

// FuzzAppendString: appendString writes what encoding/json reads back as encoding/json's own encoding does.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\x1f\x7f", "€\u2028", "\xff\xfe", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
			t.Fatalf("appendString(%q) is not a JSON string: %v", s, err)
		}
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want)
		if got != want {
			t.Fatalf("appendString(%q) reads back %q, encoding/json's %q", s, got, want)
		}
	})
}
