package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/loadgen/load"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// ack is an acknowledged record sent at t0.
func ack(id, key string, seq int64) load.Acked {
	return load.Acked{ID: id, Key: key, Seq: seq, Sent: t0}
}

// del is a delivery of (id, key, seq) in file, seen after ms milliseconds.
func del(file, id, key string, seq int64, ms int) Delivery {
	return Delivery{Payload: load.Payload{Run: "r", ID: id, Key: key, Seq: seq}, PartitionKey: key, File: file,
		Seen: t0.Add(time.Duration(ms) * time.Millisecond)}
}

func TestCheck(t *testing.T) {
	acked := []load.Acked{ack("a1", "a", 1), ack("a2", "a", 2), ack("a3", "a", 3), ack("b1", "b", 1), ack("b2", "b", 2)}
	tests := map[string]struct {
		deliveries []Delivery
		want       Report
	}{
		"every record once, in order": {
			deliveries: []Delivery{del("w1", "a1", "a", 1, 10), del("w1", "a2", "a", 2, 20), del("w2", "b1", "b", 1, 30),
				del("w1", "a3", "a", 3, 40), del("w2", "b2", "b", 2, 50)},
			want: Report{Acknowledged: 5, Delivered: 5, LatencyP50Millis: 30, LatencyP99Millis: 50, LatencyMaxMillis: 50},
		},
		"one lost": {
			deliveries: []Delivery{del("w1", "a1", "a", 1, 10), del("w1", "a3", "a", 3, 20), del("w2", "b1", "b", 1, 30), del("w2", "b2", "b", 2, 40)},
			want: Report{Acknowledged: 5, Delivered: 4, Missing: 1, MissingIDs: []string{"a2"},
				LatencyP50Millis: 20, LatencyP99Millis: 40, LatencyMaxMillis: 40,
				Keys: map[string]KeyReport{"a": {Acknowledged: 3, Missing: 1}}},
		},
		"replayed by another worker after a failover: duplicates, not disorder": {
			deliveries: []Delivery{del("w1", "a1", "a", 1, 10), del("w1", "a2", "a", 2, 20),
				del("w2", "a2", "a", 2, 90), del("w2", "a3", "a", 3, 95), del("w2", "b1", "b", 1, 30), del("w2", "b2", "b", 2, 40)},
			want: Report{Acknowledged: 5, Delivered: 5, Duplicates: 1, DuplicatedRecords: 1,
				LatencyP50Millis: 30, LatencyP99Millis: 95, LatencyMaxMillis: 95,
				Keys: map[string]KeyReport{"a": {Acknowledged: 3, Duplicates: 1}}},
		},
		"replayed by the same worker: duplicates, not disorder": {
			deliveries: []Delivery{del("w1", "a1", "a", 1, 10), del("w1", "a2", "a", 2, 20), del("w1", "a1", "a", 1, 25),
				del("w1", "a2", "a", 2, 26), del("w1", "a3", "a", 3, 27), del("w1", "b1", "b", 1, 30), del("w1", "b2", "b", 2, 40)},
			want: Report{Acknowledged: 5, Delivered: 5, Duplicates: 2, DuplicatedRecords: 2,
				LatencyP50Millis: 27, LatencyP99Millis: 40, LatencyMaxMillis: 40,
				Keys: map[string]KeyReport{"a": {Acknowledged: 3, Duplicates: 2}}},
		},
		"out of order within a worker": {
			deliveries: []Delivery{del("w1", "a2", "a", 2, 10), del("w1", "a1", "a", 1, 20), del("w1", "a3", "a", 3, 30),
				del("w1", "b1", "b", 1, 40), del("w1", "b2", "b", 2, 50)},
			want: Report{Acknowledged: 5, Delivered: 5, OutOfOrder: 1,
				LatencyP50Millis: 30, LatencyP99Millis: 50, LatencyMaxMillis: 50,
				Keys: map[string]KeyReport{"a": {Acknowledged: 3, OutOfOrder: 1}}},
		},
		"lower sequence in another worker's file is not compared": {
			deliveries: []Delivery{del("w1", "a3", "a", 3, 10), del("w2", "a1", "a", 1, 20), del("w2", "a2", "a", 2, 30),
				del("w2", "b1", "b", 1, 40), del("w2", "b2", "b", 2, 50)},
			want: Report{Acknowledged: 5, Delivered: 5, LatencyP50Millis: 30, LatencyP99Millis: 50, LatencyMaxMillis: 50},
		},
		"unacknowledged record delivered, and one under a wrong key": {
			deliveries: []Delivery{del("w1", "a1", "a", 1, 10), del("w1", "a2", "a", 2, 20), del("w1", "a3", "a", 3, 30),
				del("w1", "x9", "a", 9, 35), del("w1", "b1", "b", 1, 40), func() Delivery { d := del("w1", "b2", "b", 2, 50); d.PartitionKey = "z"; return d }()},
			want: Report{Acknowledged: 5, Delivered: 5, Unacknowledged: 1, WrongKey: 1,
				LatencyP50Millis: 30, LatencyP99Millis: 50, LatencyMaxMillis: 50},
		},
		"nothing delivered": {
			want: Report{Acknowledged: 5, Missing: 5, MissingIDs: []string{"a1", "a2", "a3", "b1", "b2"},
				Keys: map[string]KeyReport{"a": {Acknowledged: 3, Missing: 3}, "b": {Acknowledged: 2, Missing: 2}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Check(acked, tc.deliveries)
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tc.want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("report\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if got.OK() != (tc.want.Missing == 0 && tc.want.OutOfOrder == 0 && tc.want.WrongKey == 0) {
				t.Errorf("OK() = %v for %s", got.OK(), got)
			}
		})
	}
}

// consumerRecordLine is a record line as the consumer writes it, carrying payload p.
func consumerRecordLine(t testing.TB, p load.Payload) string {
	data, _ := json.Marshal(p)
	line, err := json.Marshal(map[string]any{"shard_id": "shardId-000000000001", "sequence_number": "4960", "sub_sequence_number": 3,
		"partition_key": p.Key, "arrival_time": t0, "data": string(data)})
	if err != nil {
		t.Fatal(err)
	}
	return string(line)
}

func TestParseLine(t *testing.T) {
	p := load.Payload{Run: "r1", ID: "r1-0-1", Key: "k0", Seq: 1, SentUnixNano: 5, Pad: "xx"}
	tests := map[string]struct {
		line   string
		wantOK bool
	}{
		"record of the run":      {line: consumerRecordLine(t, p), wantOK: true},
		"record of another run":  {line: consumerRecordLine(t, load.Payload{Run: "r2", ID: "r2-0-1", Key: "k"}), wantOK: false},
		"log line":               {line: `{"time":"2025","level":"INFO","msg":"consumer started","worker_id":"w"}`, wantOK: false},
		"EMF line":               {line: `{"_aws":{"Timestamp":1},"RecordsProcessed":3}`, wantOK: false},
		"curl'd record":          {line: `{"shard_id":"s","sequence_number":"1","partition_key":"p","data":"This is a testing record"}`, wantOK: false},
		"binary record":          {line: `{"shard_id":"s","sequence_number":"1","partition_key":"p","data_base64":"AAE="}`, wantOK: false},
		"truncated line":         {line: consumerRecordLine(t, p)[:40], wantOK: false},
		"payload without an id":  {line: consumerRecordLine(t, load.Payload{Run: "r1", Key: "k"}), wantOK: false},
		"not JSON with a marker": {line: `"sequence_number": nonsense`, wantOK: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, ok := ParseLine([]byte(tc.line), "r1")
			if ok != tc.wantOK {
				t.Fatalf("ok = %v; want %v", ok, tc.wantOK)
			}
			if ok && (d.ID != p.ID || d.Seq != 1 || d.PartitionKey != "k0" || d.ShardID != "shardId-000000000001" || d.SubSequenceNumber != 3) {
				t.Errorf("delivery %+v does not carry the line's fields", d)
			}
		})
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(consumerRecordLine(f, load.Payload{Run: "r1", ID: "r1-0-1", Key: "k0", Seq: 1})), "r1")
	f.Add([]byte(`{"sequence_number":"1","data":"{\"run\":\"r1\",\"id\":\"x\"}"}`), "r1")
	f.Fuzz(func(t *testing.T, line []byte, run string) {
		d, ok := ParseLine(line, run)
		if ok && (d.Run != run || d.ID == "") {
			t.Fatalf("accepted a delivery of run %q id %q for run %q", d.Run, d.ID, run)
		}
	})
}

func TestFollowerReadsGrowingAndNewFiles(t *testing.T) {
	// GIVEN a worker's output with one record line and half of another
	dir := t.TempDir()
	w1 := filepath.Join(dir, "consumer-1.log")
	line := func(id string, seq int64) string {
		return consumerRecordLine(t, load.Payload{Run: "r1", ID: id, Key: "k", Seq: seq}) + "\n"
	}
	second := line("r1-0-2", 2)
	if err := os.WriteFile(w1, []byte(`{"msg":"consumer started"}`+"\n"+line("r1-0-1", 1)+second[:30]), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := NewFollower(filepath.Join(dir, "consumer-*.log"), "r1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// WHEN waiting for three records, THEN one is there and two are missing when the wait ends
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	missing, err := f.Await(short, []string{"r1-0-1", "r1-0-2", "r1-1-1"}, 10*time.Millisecond)
	cancelShort()
	if err != nil || missing != 2 {
		t.Fatalf("Await = %d missing, %v; want 2", missing, err)
	}
	// WHEN the line is completed and a second worker's file appears
	fh, err := os.OpenFile(w1, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(fh, second[30:])
	fh.Close()
	if err := os.WriteFile(filepath.Join(dir, "consumer-2.log"), []byte(line("r1-1-1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// THEN every record is found once, with its file and line
	if missing, err := f.Await(ctx, []string{"r1-0-1", "r1-0-2", "r1-1-1"}, 10*time.Millisecond); err != nil || missing != 0 {
		t.Fatalf("Await = %d missing, %v; want 0", missing, err)
	}
	got := f.Deliveries()
	if len(got) != 3 {
		t.Fatalf("%d deliveries; want 3: %+v", len(got), got)
	}
	if got[1].ID != "r1-0-2" || got[1].File != w1 || got[1].Line != 3 {
		t.Errorf("second delivery %s at %s:%d; want r1-0-2 at %s:3", got[1].ID, got[1].File, got[1].Line, w1)
	}
}
