package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/ingest"
	"github.com/streamproc/streamproc/services/ingest/ingesttest"
	"github.com/streamproc/streamproc/services/kpl"
)

// The package's tests share one kinesis-local, started on first use.
var (
	emulators = &emulatortest.Shared{Options: emulator.Options{Kinesis: true}}
	streamN   atomic.Int64
)

func TestMain(m *testing.M) { os.Exit(emulators.Run(m)) }

// pipeline is the service under test: HTTP server, ingest handler, real
// producer, fault transport, kinesis-local.
type pipeline struct {
	url      string
	stream   string
	faults   *ingesttest.FaultTransport
	producer *kpl.Producer
	reader   *kinesis.Client // reads the stream without faults
}

// newPipeline creates a stream of the given shards and serves the ingest API
// in front of a producer configured by cfg (StreamName is filled in).
// configure, if set, sets the fault transport's fields before any call.
func newPipeline(t *testing.T, shards int32, cfg kpl.Config, configure func(*ingesttest.FaultTransport)) *pipeline {
	t.Helper()
	e := emulators.Get(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	p := &pipeline{stream: fmt.Sprintf("ingest-test-%d-%d", os.Getpid(), streamN.Add(1))}
	p.reader = e.KinesisClient()
	if err := emulator.CreateStream(ctx, p.reader, p.stream, int(shards)); err != nil {
		t.Fatal(err)
	}
	p.faults = ingesttest.NewFaultTransport(http.DefaultTransport, uint64(streamN.Load()))
	if configure != nil {
		configure(p.faults)
	}
	client := e.KinesisClient(func(o *kinesis.Options) { o.HTTPClient = &http.Client{Transport: p.faults} })
	cfg.StreamName = p.stream
	prod, err := kpl.New(cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p.producer = prod
	h, err := ingest.New(prod, ingest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	p.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		prod.Close(ctx) // unsent records at this point only matter to the test that checks them
	})
	return p
}

// sentRecord is what a client sent and what it was answered.
type sentRecord struct {
	data         []byte // the bytes that must be in the stream
	partitionKey string
	hashKey      string
	buffered     bool // sent with ?ack=buffered
	status       int
	loc          ingesttest.Location // of a 200
	err          string
}

// recordJSON is the request object for a record.
func (r *sentRecord) requestObject(dataValue any) map[string]any {
	obj := map[string]any{"data": dataValue}
	if r.partitionKey != "" {
		obj["partitionKey"] = r.partitionKey
	}
	if r.hashKey != "" {
		obj["explicitHashKey"] = r.hashKey
	}
	return obj
}

// makeRecord builds record n of a test: a third keyless, a third with a
// partition key, a third with a partition key and an explicit hash key;
// every fifth record's data is a JSON object (sent as its compact text).
func makeRecord(t *testing.T, prefix string, n int) (*sentRecord, map[string]any) {
	id := fmt.Sprintf("%s-%d", prefix, n)
	r := &sentRecord{}
	switch n % 3 {
	case 1:
		r.partitionKey = fmt.Sprintf("user-%d", n%97)
	case 2:
		r.partitionKey = fmt.Sprintf("device-%d", n%31)
		h, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
		if err != nil {
			t.Fatal(err)
		}
		r.hashKey = h.String()
	}
	if n%5 == 0 {
		r.data = []byte(fmt.Sprintf(`{"id":%q,"n":%d,"tags":["a","b"]}`, id, n))
		var v any
		if err := json.Unmarshal(r.data, &v); err != nil {
			t.Fatal(err)
		}
		return r, r.requestObject(v)
	}
	r.data = []byte(id + " payload é " + strings.Repeat("x", n%64))
	return r, r.requestObject(string(r.data))
}

// post sends one request and decodes the answer.
func post(ctx context.Context, client *http.Client, url, contentType string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

type putAnswer struct {
	ShardID           string `json:"shardId"`
	SequenceNumber    string `json:"sequenceNumber"`
	SubSequenceNumber *int64 `json:"subSequenceNumber"`
	Status            int    `json:"status"`
	Error             string `json:"error"`
}

func (a putAnswer) location() ingesttest.Location {
	var sub int64
	if a.SubSequenceNumber != nil {
		sub = *a.SubSequenceNumber
	}
	return ingesttest.Location{ShardID: a.ShardID, SequenceNumber: a.SequenceNumber, SubSequenceNumber: sub}
}

// sendSingles posts records one per request from workers goroutines.
func sendSingles(t *testing.T, ctx context.Context, url string, records []*sentRecord, bodies [][]byte, workers int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(records) || ctx.Err() != nil {
					return
				}
				status, _, body, err := post(ctx, client, url, "application/json", bodies[i])
				if err != nil {
					errs <- err
					return
				}
				r := records[i]
				r.status = status
				var a putAnswer
				if err := json.Unmarshal(body, &a); err != nil {
					errs <- fmt.Errorf("answer %q: %w", body, err)
					return
				}
				r.loc, r.err = a.location(), a.Error
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// sendBatch posts records as one batch, as a JSON array or as NDJSON.
func sendBatch(t *testing.T, ctx context.Context, url string, records []*sentRecord, objects []map[string]any, ndjson bool) {
	t.Helper()
	var body bytes.Buffer
	contentType := "application/json"
	if ndjson {
		contentType = "application/x-ndjson"
		for _, o := range objects {
			b, _ := json.Marshal(o)
			body.Write(b)
			body.WriteByte('\n')
		}
	} else {
		b, _ := json.Marshal(objects)
		body.Write(b)
	}
	status, _, answer, err := post(ctx, http.DefaultClient, url, contentType, body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK && status != http.StatusAccepted {
		t.Fatalf("batch answered %d: %s", status, answer)
	}
	var a struct {
		FailedRecordCount int         `json:"failedRecordCount"`
		Records           []putAnswer `json:"records"`
	}
	if err := json.Unmarshal(answer, &a); err != nil || len(a.Records) != len(records) {
		t.Fatalf("batch answer %.300s: %v", answer, err)
	}
	for i, r := range records {
		r.status, r.loc, r.err = a.Records[i].Status, a.Records[i].location(), a.Records[i].Error
	}
}

// checkAcknowledged checks that every record answered 200 is in the stream at
// the location it was given, with its data and keys, and every record
// answered 202 is in the stream somewhere. It returns the count of each.
func checkAcknowledged(t *testing.T, s *ingesttest.Stream, records []*sentRecord) (acked, buffered int) {
	t.Helper()
	at := s.At()
	byData := map[string]int{}
	for _, r := range s.Records {
		byData[string(r.Data)]++
	}
	for _, r := range records {
		switch r.status {
		case http.StatusOK:
			acked++
			got, ok := at[r.loc]
			if !ok {
				t.Errorf("record %q answered 200 at %+v is not in the stream", r.data, r.loc)
				continue
			}
			if !bytes.Equal(got.Data, r.data) {
				t.Errorf("at %+v: data %q, want %q", r.loc, got.Data, r.data)
			}
			if r.partitionKey != "" && (got.PartitionKey != r.partitionKey || got.ExplicitHashKey != r.hashKey) {
				t.Errorf("record %q: keys (%q, %q), want (%q, %q)", r.data, got.PartitionKey, got.ExplicitHashKey, r.partitionKey, r.hashKey)
			}
		case http.StatusAccepted:
			buffered++
			if byData[string(r.data)] == 0 {
				t.Errorf("record %q answered 202 is not in the stream", r.data)
			}
		}
	}
	return acked, buffered
}

// checkAggregatesInShard checks the explicit hash key of every entry the
// emulator accepted lies in the range of the shard it landed in.
func checkAggregatesInShard(t *testing.T, s *ingesttest.Stream, accepted []ingesttest.AcceptedEntry) {
	t.Helper()
	shards := map[string]ingesttest.Shard{}
	for _, sh := range s.Shards {
		shards[sh.ID] = sh
	}
	for _, e := range accepted {
		h, err := ingesttest.HashKey(e.PartitionKey, e.ExplicitHashKey)
		if err != nil {
			t.Fatal(err)
		}
		if sh, ok := shards[e.ShardID]; !ok || !sh.Contains(h) {
			t.Errorf("entry with hash key %v (ehk %q) landed in %s, whose range does not hold it", h, e.ExplicitHashKey, e.ShardID)
		}
	}
}

func TestTwentyThousandRecordsReachTheStream(t *testing.T) {
	p := newPipeline(t, 4, kpl.Config{MaxBufferedTime: 50 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	const (
		singles         = 7000 // default acknowledgement, one record per request
		bufferedSingles = 1000 // ?ack=buffered
		batches         = 24   // of 500: half JSON arrays, half NDJSON
		batchSize       = 500
	)
	var all []*sentRecord
	var singleRecs []*sentRecord
	var singleBodies [][]byte
	for n := range singles + bufferedSingles {
		r, obj := makeRecord(t, "single", n)
		b, _ := json.Marshal(obj)
		singleRecs = append(singleRecs, r)
		singleBodies = append(singleBodies, b)
	}
	all = append(all, singleRecs...)
	for _, r := range singleRecs[singles:] {
		r.buffered = true
	}
	sendSingles(t, ctx, p.url, singleRecs[:singles], singleBodies[:singles], 128)
	sendSingles(t, ctx, p.url+"/?ack=buffered", singleRecs[singles:], singleBodies[singles:], 32)

	for b := range batches {
		var recs []*sentRecord
		var objs []map[string]any
		for i := range batchSize {
			r, obj := makeRecord(t, fmt.Sprintf("batch%d", b), i)
			recs = append(recs, r)
			objs = append(objs, obj)
		}
		sendBatch(t, ctx, p.url+"/records", recs, objs, b%2 == 1)
		all = append(all, recs...)
	}
	if err := p.producer.Flush(ctx); err != nil { // the buffered records
		t.Fatal(err)
	}

	for _, r := range all {
		want := http.StatusOK
		if r.buffered {
			want = http.StatusAccepted
		}
		if r.status != want {
			t.Fatalf("record %q answered %d (%s), want %d", r.data, r.status, r.err, want)
		}
	}
	s, err := ingesttest.ReadStream(ctx, p.reader, p.stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.OutOfRange) > 0 {
		t.Errorf("%d user records lie outside their shard's range (a KCL consumer drops them), first: %+v", len(s.OutOfRange), s.OutOfRange[0])
	}
	acked, buffered := checkAcknowledged(t, s, all)
	_, accepted := p.faults.Snapshot()
	checkAggregatesInShard(t, s, accepted)
	if len(s.Records) < len(all) {
		t.Errorf("%d user records in the stream, want at least %d", len(s.Records), len(all))
	}
	t.Logf("%d records sent (%d acknowledged 200, %d acknowledged 202); stream holds %d user records in %d Kinesis records (%.1f per record) over %d shards: %v",
		len(all), acked, buffered, len(s.Records), s.KinesisCount, float64(len(s.Records))/float64(s.KinesisCount), len(s.Shards), s.PerShard)
}
