// Package verify checks what the consumers processed against what the producer acknowledged: it follows the
// consumer workers' output (one JSON line per record: shard_id, sequence_number, sub_sequence_number,
// partition_key, data), finds the load generator's records in it (package load's Payload as data), and reports the
// acknowledged records that are missing, the ones delivered more than once, and those out of order within their
// partition key, with the end-to-end latency from send to the moment their line appeared.
//
// Order is checked within each worker's output (one file per worker is one timeline): a record delivered for the
// first time by a worker after a record of the same key with a higher sequence, delivered by that same worker, is out
// of order. Re-deliveries after a failover are duplicates, not disorder. Records of one key delivered by different
// workers are not compared, since their files share no clock.
package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/streamproc/streamproc/services/loadgen/load"
)

// Delivery is one record line of the run found in a worker's output.
type Delivery struct {
	load.Payload
	// PartitionKey, ShardID, SequenceNumber and SubSequenceNumber are what the consumer wrote.
	PartitionKey string
	// ShardID is the shard the consumer read the record from.
	ShardID string
	// SequenceNumber is the Kinesis record's sequence number.
	SequenceNumber string
	// SubSequenceNumber is the record's position inside its aggregate; 0 when it was not aggregated.
	SubSequenceNumber int64
	// File is the worker's output file; Line its line number there (from 1).
	File string
	// Line is the delivery's line number in File, from 1.
	Line int
	// Seen is when the follower read the line (its write time, to within the follower's poll interval).
	Seen time.Time
}

// consumerLine is the JSON line the consumer writes per record.
type consumerLine struct {
	ShardID           string  `json:"shard_id"`
	SequenceNumber    string  `json:"sequence_number"`
	SubSequenceNumber int64   `json:"sub_sequence_number"`
	PartitionKey      string  `json:"partition_key"`
	Data              *string `json:"data"`
}

// recordMarker is in every consumer record line; other lines (logs, metrics) are skipped without parsing.
var recordMarker = []byte(`"sequence_number":`)

// ParseLine returns the delivery of the run runID held by line, or ok false for any other line: a log or metrics
// line, another run's record, or a record that is not the load generator's.
func ParseLine(line []byte, runID string) (d Delivery, ok bool) {
	if !bytes.Contains(line, recordMarker) {
		return d, false
	}
	var cl consumerLine
	if json.Unmarshal(line, &cl) != nil || cl.Data == nil {
		return d, false
	}
	return deliveryOf([]byte(*cl.Data), runID, cl.PartitionKey, cl.ShardID, cl.SequenceNumber, cl.SubSequenceNumber)
}

// deliveryOf is the delivery of the record whose payload is data, when it is a record of run runID.
func deliveryOf(data []byte, runID, key, shardID, seq string, sub int64) (d Delivery, ok bool) {
	if err := json.Unmarshal(data, &d.Payload); err != nil || d.Run != runID || d.ID == "" {
		return d, false
	}
	d.PartitionKey, d.ShardID, d.SequenceNumber, d.SubSequenceNumber = key, shardID, seq, sub
	return d, true
}

// source yields the deliveries of a run that appeared since its previous call, each with File, Line and Seen set.
type source interface {
	read(now time.Time) ([]Delivery, error)
}

// Follower follows the consumers' output as it grows: their log files (NewFollower) or the objects the S3 sink
// landed (NewObjectFollower). It is safe for concurrent use.
type Follower struct {
	src source

	mu         sync.Mutex
	deliveries []Delivery
	seen       map[string]bool
}

// logFiles is the source of the consumers' log files. Files matching its pattern that appear later (a worker
// started during the run) are picked up.
type logFiles struct {
	pattern string
	runID   string
	files   map[string]*fileTail
}

type fileTail struct {
	offset  int64
	line    int
	partial []byte
}

// NewFollower follows the files matching the glob pattern (such as .local/logs/consumer-*.log) for the records of
// run runID. Lines already in the files count too, so it may start after the load.
func NewFollower(pattern, runID string) (*Follower, error) {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("verify: pattern %q: %w", pattern, err)
	}
	return &Follower{src: &logFiles{pattern: pattern, runID: runID, files: map[string]*fileTail{}}, seen: map[string]bool{}}, nil
}

// Poll reads what appeared since the last call. Polls do not overlap: the sources keep where they stopped.
func (f *Follower) Poll() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ds, err := f.src.read(time.Now())
	for _, d := range ds {
		f.deliveries = append(f.deliveries, d)
		f.seen[d.ID] = true
	}
	return err
}

// read implements source: the lines appended to the files since the last call.
func (l *logFiles) read(now time.Time) ([]Delivery, error) {
	paths, err := filepath.Glob(l.pattern)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	var out []Delivery
	for _, path := range paths {
		t := l.files[path]
		if t == nil {
			t = &fileTail{}
			l.files[path] = t
		}
		if out, err = l.readFile(path, t, now, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// readFile appends the deliveries in the lines added to path since t's offset to out.
func (l *logFiles) readFile(path string, t *fileTail, now time.Time, out []Delivery) ([]Delivery, error) {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("verify: %w", err)
	}
	defer file.Close()
	if _, err := file.Seek(t.offset, io.SeekStart); err != nil {
		return out, fmt.Errorf("verify: %w", err)
	}
	data, err := io.ReadAll(file)
	if err != nil {
		return out, fmt.Errorf("verify: read %s: %w", path, err)
	}
	t.offset += int64(len(data))
	t.partial = append(t.partial, data...)
	rest := t.partial
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		t.line++
		if d, ok := ParseLine(rest[:i], l.runID); ok {
			d.File, d.Line, d.Seen = path, t.line, now
			out = append(out, d)
		}
		rest = rest[i+1:]
	}
	t.partial = append(t.partial[:0], rest...)
	return out, nil
}

// Run polls every interval until ctx is done.
func (f *Follower) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := f.Poll(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Await polls every interval until every id in ids has been delivered at least once, or ctx is done; it returns
// how many are still missing.
func (f *Follower) Await(ctx context.Context, ids []string, interval time.Duration) (missing int, err error) {
	for {
		if err := f.Poll(); err != nil {
			return 0, err
		}
		f.mu.Lock()
		missing = 0
		for _, id := range ids {
			if !f.seen[id] {
				missing++
			}
		}
		f.mu.Unlock()
		if missing == 0 {
			return 0, nil
		}
		select {
		case <-ctx.Done():
			return missing, nil
		case <-time.After(interval):
		}
	}
}

// Deliveries returns the run's deliveries read so far, per file in line order.
func (f *Follower) Deliveries() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deliveries)
}

// KeyReport is the check of one partition key.
type KeyReport struct {
	// Acknowledged is the key's acknowledged records.
	Acknowledged int `json:"acknowledged"`
	// Missing is the key's acknowledged records never found.
	Missing int `json:"missing"`
	// Duplicates is the key's deliveries beyond the first of a record.
	Duplicates int `json:"duplicates"`
	// OutOfOrder is the key's first deliveries in a file that came after a higher sequence of the key there.
	OutOfOrder int `json:"out_of_order"`
}

// Report is the outcome of Check.
type Report struct {
	// Acknowledged is the number of acknowledged records checked.
	Acknowledged int `json:"acknowledged"`
	// Delivered is the acknowledged records found at least once.
	Delivered int `json:"delivered"`
	// Missing is the acknowledged records never found: losses.
	Missing int `json:"missing"`
	// MissingIDs lists up to 20 of them.
	MissingIDs []string `json:"missing_ids,omitempty"`
	// Duplicates is the deliveries beyond the first of acknowledged records (at-least-once re-deliveries);
	// DuplicatedRecords the records delivered more than once.
	Duplicates int `json:"duplicates"`
	// DuplicatedRecords is the acknowledged records delivered more than once.
	DuplicatedRecords int `json:"duplicated_records"`
	// OutOfOrder is the first deliveries that came after a higher sequence of their key in the same worker's output.
	OutOfOrder int `json:"out_of_order"`
	// Unacknowledged is the run's records found although their request did not get an acknowledgement (for
	// example a request that timed out after Kinesis took the record): not an error of the pipeline.
	Unacknowledged int `json:"unacknowledged"`
	// WrongKey is deliveries whose partition key differs from the one the record was sent with.
	WrongKey int `json:"wrong_key"`
	// E2E latency, send to first delivery seen, of the acknowledged records, in milliseconds.
	LatencyP50Millis float64 `json:"e2e_latency_p50_ms"`
	// LatencyP99Millis is the 99th percentile end-to-end latency, in milliseconds.
	LatencyP99Millis float64 `json:"e2e_latency_p99_ms"`
	// LatencyMaxMillis is the longest end-to-end latency, in milliseconds.
	LatencyMaxMillis float64 `json:"e2e_latency_max_ms"`
	// Keys holds the keys with a problem (missing, duplicates or disorder).
	Keys map[string]KeyReport `json:"keys_with_problems,omitempty"`
}

// OK reports whether nothing acknowledged is missing, out of order or under the wrong key (duplicates are allowed:
// delivery is at least once).
func (r Report) OK() bool { return r.Missing == 0 && r.OutOfOrder == 0 && r.WrongKey == 0 }

// String summarises the report on one line.
func (r Report) String() string {
	return fmt.Sprintf("acknowledged %d · delivered %d · missing %d · duplicates %d (%d records) · out of order %d · "+
		"unacknowledged but delivered %d · e2e latency p50 %.0f ms p99 %.0f ms max %.0f ms",
		r.Acknowledged, r.Delivered, r.Missing, r.Duplicates, r.DuplicatedRecords, r.OutOfOrder, r.Unacknowledged,
		r.LatencyP50Millis, r.LatencyP99Millis, r.LatencyMaxMillis)
}

// Check compares the acknowledged records with the deliveries (as Follower.Deliveries returns them: each file's
// lines in order).
func Check(acked []load.Acked, deliveries []Delivery) Report {
	c := newChecker(acked)
	for _, d := range deliveries {
		c.deliver(d)
	}
	return c.report()
}

// checker builds a Report: it counts each acknowledged record's deliveries and checks, per output file and key,
// that the records of a key come in the order they were sent.
type checker struct {
	r      Report
	acked  []load.Acked
	byID   map[string]load.Acked
	count  map[string]int
	first  map[string]Delivery
	maxSeq map[fileKey]int64
	// seenInFile holds the records already seen per file and key: a record repeated in one file (a retry after a
	// failure) is a duplicate, not a step back in order.
	seenInFile map[fileKey]map[string]bool
	unacked    map[string]bool
}

// fileKey is one partition key's records in one output file, where their order is checked.
type fileKey struct{ file, key string }

func newChecker(acked []load.Acked) *checker {
	c := &checker{
		r:     Report{Acknowledged: len(acked), Keys: map[string]KeyReport{}},
		acked: acked, byID: make(map[string]load.Acked, len(acked)),
		count: map[string]int{}, first: map[string]Delivery{}, maxSeq: map[fileKey]int64{},
		seenInFile: map[fileKey]map[string]bool{}, unacked: map[string]bool{},
	}
	for _, a := range acked {
		c.byID[a.ID] = a
	}
	return c
}

// deliver accounts for one delivery.
func (c *checker) deliver(d Delivery) {
	a, ok := c.byID[d.ID]
	if !ok {
		c.unacked[d.ID] = true
		return
	}
	if d.PartitionKey != a.Key {
		c.r.WrongKey++
	}
	c.count[d.ID]++
	if c.count[d.ID] == 1 {
		c.first[d.ID] = d
	} else {
		c.r.Duplicates++
		c.updateKey(a.Key, func(kr *KeyReport) { kr.Duplicates++ })
	}
	fk := fileKey{d.File, a.Key}
	if c.seenInFile[fk] == nil {
		c.seenInFile[fk] = map[string]bool{}
	}
	if c.seenInFile[fk][d.ID] {
		return
	}
	c.seenInFile[fk][d.ID] = true
	if a.Seq < c.maxSeq[fk] {
		c.r.OutOfOrder++
		c.updateKey(a.Key, func(kr *KeyReport) { kr.OutOfOrder++ })
	}
	c.maxSeq[fk] = max(c.maxSeq[fk], a.Seq)
}

func (c *checker) updateKey(key string, update func(*KeyReport)) {
	kr := c.r.Keys[key]
	update(&kr)
	c.r.Keys[key] = kr
}

// report counts what was missing, duplicated and delivered, with the end-to-end latencies of first deliveries.
func (c *checker) report() Report {
	r := &c.r
	r.Unacknowledged = len(c.unacked)
	var latencies []time.Duration
	ackedPerKey := map[string]int{}
	for _, a := range c.acked {
		ackedPerKey[a.Key]++
		n := c.count[a.ID]
		switch {
		case n == 0:
			r.Missing++
			if len(r.MissingIDs) < 20 {
				r.MissingIDs = append(r.MissingIDs, a.ID)
			}
			c.updateKey(a.Key, func(kr *KeyReport) { kr.Missing++ })
		case n > 1:
			r.DuplicatedRecords++
		}
		if n > 0 {
			r.Delivered++
			latencies = append(latencies, c.first[a.ID].Seen.Sub(a.Sent))
		}
	}
	for k, kr := range r.Keys {
		kr.Acknowledged = ackedPerKey[k]
		r.Keys[k] = kr
	}
	if len(r.Keys) == 0 {
		r.Keys = nil
	}
	sort.Strings(r.MissingIDs)
	r.LatencyP50Millis = millis(load.Percentile(latencies, 0.50))
	r.LatencyP99Millis = millis(load.Percentile(latencies, 0.99))
	r.LatencyMaxMillis = millis(load.Percentile(latencies, 1))
	return *r
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// DescribeKeys lists the keys with problems, worst first, for a human reader.
func (r Report) DescribeKeys(limit int) string {
	keys := make([]string, 0, len(r.Keys))
	for k := range r.Keys {
		keys = append(keys, k)
	}
	bad := func(k string) int { kr := r.Keys[k]; return 1000*kr.Missing + 10*kr.OutOfOrder + kr.Duplicates }
	sort.Slice(keys, func(i, j int) bool {
		return bad(keys[i]) > bad(keys[j]) || bad(keys[i]) == bad(keys[j]) && keys[i] < keys[j]
	})
	var b strings.Builder
	for i, k := range keys {
		if i == limit {
			fmt.Fprintf(&b, "  ... %d more keys\n", len(keys)-limit)
			break
		}
		kr := r.Keys[k]
		fmt.Fprintf(&b, "  key %s: acknowledged %d, missing %d, duplicates %d, out of order %d\n", k, kr.Acknowledged, kr.Missing, kr.Duplicates, kr.OutOfOrder)
	}
	return b.String()
}
