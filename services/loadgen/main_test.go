package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/loadgen/load"
)

func TestParseFlags(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string // part of the error message; empty for valid flags
	}{
		"records":            {args: []string{"-records", "10"}},
		"local polling":      {args: []string{"-local", "polling", "-duration", "5s"}},
		"no end":             {args: []string{"-rate", "10"}, want: "set -records or -duration"},
		"unknown local mode": {args: []string{"-local", "kafka", "-records", "1"}, want: "-local must be fanout or polling"},
		"stray argument":     {args: []string{"-records", "1", "now"}, want: "unexpected arguments"},
		"unknown flag":       {args: []string{"-speed", "1"}, want: "flag provided but not defined"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var errOut strings.Builder
			_, err := parseFlags(tc.args, &errOut)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v: %s", err, errOut.String())
				}
				return
			}
			if err == nil || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("error %v, output %q; want it to say %q", err, errOut.String(), tc.want)
			}
		})
	}
}

// consumerOutput is a fake producer whose "consumer" writes one record line per acknowledged record to a log, in the
// format of the consumer workers' output; drop names the records (counted from 1) whose line it leaves out.
type consumerOutput struct {
	t    *testing.T
	log  string
	drop map[int]bool

	mu       sync.Mutex
	received int
}

func (c *consumerOutput) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rec struct {
		Data         json.RawMessage `json:"data"`
		PartitionKey string          `json:"partitionKey"`
	}
	if r.URL.Path != "/" || json.NewDecoder(r.Body).Decode(&rec) != nil || len(rec.Data) == 0 || rec.PartitionKey == "" {
		http.Error(w, `{"error":"want POST / with data and partitionKey"}`, http.StatusBadRequest)
		return
	}
	// The producer stores a JSON object's compact text; the consumer writes those bytes back as a string.
	var data bytes.Buffer
	if err := json.Compact(&data, rec.Data); err != nil {
		http.Error(w, `{"error":"bad data"}`, http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.received++
	seq := fmt.Sprintf("4963%020d", c.received)
	if !c.drop[c.received] {
		line, _ := json.Marshal(map[string]any{"shard_id": "shardId-000000000000", "sequence_number": seq,
			"sub_sequence_number": 0, "partition_key": rec.PartitionKey, "data": data.String()})
		f, err := os.OpenFile(c.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.Write(append(line, '\n'))
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			c.t.Errorf("write the consumer line: %v", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"shardId":"shardId-000000000000","sequenceNumber":%q,"subSequenceNumber":0}`, seq)
}

func TestRunVerifiesTheConsumersOutput(t *testing.T) {
	const records = 40
	tests := map[string]struct {
		drop        map[int]bool
		wantOK      bool
		wantMissing int
		wantText    []string
	}{
		"every record processed": {
			wantOK: true,
			wantText: []string{"load: 40 records in 40 requests", ": 40 acknowledged", "0 failed map[200:40]",
				"verify: acknowledged 40 · delivered 40 · missing 0 · duplicates 0 (0 records) · out of order 0"},
		},
		"one record lost": {
			drop: map[int]bool{17: true}, wantMissing: 1,
			wantText: []string{"load: 40 records in 40 requests", ": 40 acknowledged",
				"verify: acknowledged 40 · delivered 39 · missing 1 · duplicates 0", ", missing 1, duplicates 0, out of order 0"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN a producer on 127.0.0.1 whose consumer writes a line per record it acknowledges (but the dropped)
			dir := t.TempDir()
			srv := httptest.NewServer(&consumerOutput{t: t, log: filepath.Join(dir, "consumer-1.log"), drop: tc.drop})
			defer srv.Close()
			jsonPath := filepath.Join(dir, "summary.json")
			o := options{
				load:     load.Config{URL: srv.URL, Records: records, Concurrency: 4, RequestTimeout: 10 * time.Second},
				jsonPath: jsonPath, verifyLogs: filepath.Join(dir, "consumer-*.log"), verifyWait: 500 * time.Millisecond,
			}
			// WHEN loadgen runs with verification against that output
			var out, progress strings.Builder
			ok, err := run(t.Context(), o, &out, &progress, false)
			// THEN it reports the load, the verification, and a loss as not ok
			if err != nil {
				t.Fatalf("run: %v\n%s%s", err, out.String(), progress.String())
			}
			if ok != tc.wantOK {
				t.Errorf("ok = %v; want %v", ok, tc.wantOK)
			}
			for _, want := range tc.wantText {
				if !strings.Contains(out.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, out.String())
				}
			}
			raw, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			var sum struct {
				Load struct {
					Records, Acked, Failed int64
				} `json:"load"`
				Verify *struct {
					Acknowledged, Delivered, Missing int
					MissingIDs                       []string `json:"missing_ids"`
				} `json:"verify"`
			}
			if err := json.Unmarshal(raw, &sum); err != nil {
				t.Fatalf("JSON summary %s: %v", raw, err)
			}
			if sum.Load.Records != records || sum.Load.Acked != records || sum.Load.Failed != 0 {
				t.Errorf("JSON load = %+v; want %d records, all acknowledged", sum.Load, records)
			}
			if sum.Verify == nil {
				t.Fatalf("JSON summary has no verify section: %s", raw)
			}
			if sum.Verify.Acknowledged != records || sum.Verify.Missing != tc.wantMissing ||
				sum.Verify.Delivered != records-tc.wantMissing || len(sum.Verify.MissingIDs) != tc.wantMissing {
				t.Errorf("JSON verify = %+v; want %d acknowledged, %d missing", *sum.Verify, records, tc.wantMissing)
			}
		})
	}
}
