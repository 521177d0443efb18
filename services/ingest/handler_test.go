package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/telemetry"
)

// fakePutter is an in-memory producer: it keeps the records it takes and
// answers each on its own goroutine, as the real engine answers from its
// flush goroutines.
type fakePutter struct {
	// refuse, if set, decides whether PutAsync refuses a record at once.
	refuse func(kpl.Record) error
	// outcome, if set, decides a taken record's result; nil means success.
	outcome func(kpl.Record) kpl.Result
	// hold keeps taken records unanswered (a stalled Kinesis).
	hold bool

	mu      sync.Mutex
	records []kpl.Record
}

func (f *fakePutter) PutAsync(r kpl.Record, done func(kpl.Result)) error {
	if f.refuse != nil {
		if err := f.refuse(r); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.records = append(f.records, r)
	n := len(f.records)
	f.mu.Unlock()
	if f.hold {
		return nil
	}
	res := kpl.Result{ShardID: "shardId-000000000001", SequenceNumber: "seq-" + string(r.Data), SubSequenceNumber: int64(n), Attempts: 1}
	if f.outcome != nil {
		res = f.outcome(r)
	}
	go done(res)
	return nil
}

func (f *fakePutter) taken() []kpl.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]kpl.Record(nil), f.records...)
}

// countingMetrics records what the handler emits.
type countingMetrics struct {
	mu     sync.Mutex
	counts map[string]float64
	obs    map[string]int
}

func (m *countingMetrics) Add(name string, unit telemetry.Unit, v float64, dims ...telemetry.Dimension) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]float64{}
	}
	m.counts[name] += v
}

func (m *countingMetrics) Observe(name string, unit telemetry.Unit, v float64, dims ...telemetry.Dimension) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.obs == nil {
		m.obs = map[string]int{}
	}
	m.obs[name]++
}

func refuseWith(err error) func(kpl.Record) error {
	return func(kpl.Record) error { return err }
}

func failWith(err error) func(kpl.Record) kpl.Result {
	return func(kpl.Record) kpl.Result { return kpl.Result{Err: err, Attempts: 3} }
}

// errorBody decodes an error answer and checks its shape.
func errorBody(t *testing.T, body []byte) string {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %q", err, body)
	}
	msg, ok := e["error"].(string)
	if !ok || msg == "" || len(e) != 1 {
		t.Fatalf(`error body = %s, want exactly {"error": "<message>"}`, body)
	}
	return msg
}

// serve sends req to a new Handler in front of p configured by cfg and
// returns the answer.
func serve(t *testing.T, p *fakePutter, cfg Config, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	h, err := New(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// singleRecordCase is a request for one record (on any route, by default
// POST / with Content-Type application/json) and the answer it must get.
type singleRecordCase struct {
	method, path string
	contentType  string // "-" sends none
	body         string
	putter       *fakePutter // nil: one that takes every record
	cfg          Config
	wantStatus   int
	wantError    string            // substring of the error message; "" for a 2xx
	wantHeader   map[string]string // exact header values
	wantRecord   *kpl.Record       // the record the producer got
	wantResponse string            // exact JSON body of a 2xx
}

func TestSingleRecord(t *testing.T) {
	maxHash := "340282366920938463463374607431768211455"
	tests := map[string]singleRecordCase{
		"string data": {
			body:         `{"data":"hello"}`,
			wantStatus:   200,
			wantRecord:   &kpl.Record{Data: []byte("hello")},
			wantResponse: `{"shardId":"shardId-000000000001","sequenceNumber":"seq-hello","subSequenceNumber":1}`,
		},
		"escaped string data is sent as its UTF-8 bytes": {
			body:       `{"data":"caf\u00e9 \"q\"\n"}`,
			wantStatus: 200,
			wantRecord: &kpl.Record{Data: []byte("café \"q\"\n")},
		},
		"object data is sent compact": {
			body:       `{"data": { "a" : 1, "b" : [ 1, 2 ], "s": "x y" } }`,
			wantStatus: 200,
			wantRecord: &kpl.Record{Data: []byte(`{"a":1,"b":[1,2],"s":"x y"}`)},
		},
		"number data":          {body: `{"data": 42.5}`, wantStatus: 200, wantRecord: &kpl.Record{Data: []byte("42.5")}},
		"bool data":            {body: `{"data": false}`, wantStatus: 200, wantRecord: &kpl.Record{Data: []byte("false")}},
		"empty object is data": {body: `{"data": {}}`, wantStatus: 200, wantRecord: &kpl.Record{Data: []byte("{}")}},
		"keys": {
			body:       `{"data":"x","partitionKey":"user-1","explicitHashKey":"` + maxHash + `"}`,
			wantStatus: 200,
			wantRecord: &kpl.Record{Data: []byte("x"), PartitionKey: "user-1", ExplicitHashKey: maxHash},
		},
		"256-character multi-byte partition key": {
			body:       `{"data":"x","partitionKey":"` + strings.Repeat("é", 256) + `"}`,
			wantStatus: 200,
			wantRecord: &kpl.Record{Data: []byte("x"), PartitionKey: strings.Repeat("é", 256)},
		},
		"explicit hash key zero": {
			body: `{"data":"x","explicitHashKey":"0"}`, wantStatus: 200,
			wantRecord: &kpl.Record{Data: []byte("x"), ExplicitHashKey: "0"},
		},
		"no content type is JSON": {contentType: "-", body: `{"data":"x"}`, wantStatus: 200},
		"charset utf-8":           {contentType: "application/json; charset=UTF-8", body: `{"data":"x"}`, wantStatus: 200},
		"explicit ack=kinesis":    {path: "/?ack=kinesis", body: `{"data":"x"}`, wantStatus: 200},
		"buffered ack answers before Kinesis": {
			path:         "/?ack=buffered",
			body:         `{"data":"x"}`,
			putter:       &fakePutter{hold: true},
			wantStatus:   202,
			wantRecord:   &kpl.Record{Data: []byte("x")},
			wantResponse: `{"buffered":true}`,
		},

		"malformed JSON":        {body: `{"data": `, wantStatus: 400, wantError: "malformed JSON"},
		"bad JSON token":        {body: `{"data": tru}`, wantStatus: 400, wantError: "malformed JSON at byte"},
		"trailing data":         {body: `{"data":"x"} {"data":"y"}`, wantStatus: 400, wantError: "unexpected data after the JSON value"},
		"trailing garbage":      {body: `{"data":"x"} }`, wantStatus: 400, wantError: "malformed JSON"},
		"empty body":            {body: ``, wantStatus: 400, wantError: "request body is empty"},
		"not an object":         {body: `["x"]`, wantStatus: 400, wantError: "expected a JSON object"},
		"missing data":          {body: `{"partitionKey":"a"}`, wantStatus: 400, wantError: `missing "data"`},
		"null data":             {body: `{"data":null}`, wantStatus: 400, wantError: `"data" is null`},
		"empty string data":     {body: `{"data":""}`, wantStatus: 400, wantError: "empty string"},
		"unknown field":         {body: `{"data":"x","partitonKey":"a"}`, wantStatus: 400, wantError: `unknown field "partitonKey"`},
		"empty partition key":   {body: `{"data":"x","partitionKey":""}`, wantStatus: 400, wantError: "partitionKey must be 1-256 characters, got 0"},
		"long partition key":    {body: `{"data":"x","partitionKey":"` + strings.Repeat("k", 257) + `"}`, wantStatus: 400, wantError: "got 257"},
		"numeric partition key": {body: `{"data":"x","partitionKey":7}`, wantStatus: 400, wantError: `"partitionKey" must be a string`},
		"hash key too big":      {body: `{"data":"x","explicitHashKey":"340282366920938463463374607431768211456"}`, wantStatus: 400, wantError: "larger than 2^128-1"},
		"negative hash key":     {body: `{"data":"x","explicitHashKey":"-1"}`, wantStatus: 400, wantError: "explicitHashKey must be a decimal integer"},
		"hex hash key":          {body: `{"data":"x","explicitHashKey":"0x10"}`, wantStatus: 400, wantError: "explicitHashKey must be a decimal integer"},
		"empty hash key":        {body: `{"data":"x","explicitHashKey":""}`, wantStatus: 400, wantError: "explicitHashKey must be a decimal integer"},
		"40-digit hash key":     {body: `{"data":"x","explicitHashKey":"0000000000000000000000000000000000000001"}`, wantStatus: 400, wantError: "1-39 digits"},
		"unknown ack":           {path: "/?ack=async", body: `{"data":"x"}`, wantStatus: 400, wantError: `ack="async"`},
		"unknown query":         {path: "/?acks=buffered", body: `{"data":"x"}`, wantStatus: 400, wantError: `unknown query parameter "acks"`},
		"repeated ack":          {path: "/?ack=buffered&ack=kinesis", body: `{"data":"x"}`, wantStatus: 400, wantError: "given 2 times"},
		"body too large": {
			body:       `{"data":"` + strings.Repeat("x", 100) + `"}`,
			cfg:        Config{MaxRecordBodyBytes: 64},
			wantStatus: 413, wantError: "larger than the limit of 64 bytes",
		},
		"text/plain":             {contentType: "text/plain", body: `{"data":"x"}`, wantStatus: 415, wantError: `unsupported Content-Type "text/plain"`},
		"form (curl -d default)": {contentType: "application/x-www-form-urlencoded", body: `{"data":"x"}`, wantStatus: 415, wantError: "use application/json"},
		"ndjson on single route": {contentType: ContentTypeNDJSON, body: `{"data":"x"}`, wantStatus: 415, wantError: "use application/json"},
		"latin-1 charset":        {contentType: "application/json; charset=latin1", body: `{"data":"x"}`, wantStatus: 415, wantError: `unsupported charset "latin1"`},
		"malformed content type": {contentType: "application/json; ;", body: `{"data":"x"}`, wantStatus: 415, wantError: "unsupported Content-Type"},
		"GET on record route": {
			method: "GET", body: "", wantStatus: 405, wantError: "method GET not allowed on /",
			wantHeader: map[string]string{"Allow": "POST"},
		},
		"PUT on batch route": {
			method: "PUT", path: "/records", body: "[]", wantStatus: 405,
			wantHeader: map[string]string{"Allow": "POST"}, wantError: "use POST",
		},
		"POST on health check": {
			path: "/healthcheck", wantStatus: 405,
			wantHeader: map[string]string{"Allow": "GET, HEAD"}, wantError: "method POST not allowed",
		},
		"unknown path":   {path: "/record", body: `{"data":"x"}`, wantStatus: 404, wantError: "no route for POST /record"},
		"trailing slash": {path: "/records/", body: `[]`, wantStatus: 404, wantError: "no route"},
		"buffer full": {
			body: `{"data":"x"}`, putter: &fakePutter{refuse: refuseWith(kpl.ErrBufferFull)},
			wantStatus: 503, wantError: "buffer is full", wantHeader: map[string]string{"Retry-After": "1"},
		},
		"buffer full, retry after rounds up": {
			body: `{"data":"x"}`, putter: &fakePutter{refuse: refuseWith(kpl.ErrBufferFull)},
			cfg:        Config{RetryAfter: 1500 * time.Millisecond},
			wantStatus: 503, wantHeader: map[string]string{"Retry-After": "2"}, wantError: "buffer is full",
		},
		"buffer full in buffered mode": {
			path: "/?ack=buffered", body: `{"data":"x"}`, putter: &fakePutter{refuse: refuseWith(kpl.ErrBufferFull)},
			wantStatus: 503, wantError: "buffer is full", wantHeader: map[string]string{"Retry-After": "1"},
		},
		"producer closed": {
			body: `{"data":"x"}`, putter: &fakePutter{refuse: refuseWith(kpl.ErrClosed)},
			wantStatus: 503, wantError: "shutting down", wantHeader: map[string]string{"Retry-After": "1"},
		},
		"record too large for Kinesis": {
			body: `{"data":"x"}`, putter: &fakePutter{refuse: refuseWith(fmt.Errorf("record of 1048577 bytes: %w", kpl.ErrRecordTooLarge))},
			wantStatus: 413, wantError: "1048577 bytes",
		},
		"record the producer finds invalid": {
			body: `{"data":"x"}`, putter: &fakePutter{refuse: refuseWith(&kpl.InvalidRecordError{Reason: "bad key"})},
			wantStatus: 400, wantError: "bad key",
		},
		"unexpected producer error is the server's": {
			body: `{"data":"x"}`, putter: &fakePutter{refuse: refuseWith(errors.New("boom"))},
			wantStatus: 500, wantError: "internal error",
		},
		"record expired in Kinesis": {
			body: `{"data":"x"}`, putter: &fakePutter{outcome: failWith(fmt.Errorf("after 7 attempts: %w", kpl.ErrRecordExpired))},
			wantStatus: 504, wantError: "time to live",
		},
		"record failed in Kinesis": {
			body: `{"data":"x"}`, putter: &fakePutter{outcome: failWith(errors.New("ResourceNotFoundException: stream gone"))},
			wantStatus: 503, wantError: "Kinesis did not accept the record: ResourceNotFoundException",
			wantHeader: map[string]string{"Retry-After": "1"},
		},
		"producer closed before Kinesis accepted": {
			body: `{"data":"x"}`, putter: &fakePutter{outcome: failWith(kpl.ErrClosed)},
			wantStatus: 503, wantError: "shut down before Kinesis accepted",
		},
	}
	for name, tc := range tests {
		t.Run(name, tc.run)
	}
}

// run serves the case's request and checks the answer and what the
// producer got.
func (tc singleRecordCase) run(t *testing.T) {
	// GIVEN a handler in front of the case's producer
	p := cmp.Or(tc.putter, &fakePutter{})
	req := httptest.NewRequest(cmp.Or(tc.method, "POST"), cmp.Or(tc.path, "/"), strings.NewReader(tc.body))
	switch tc.contentType {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", tc.contentType)
	}
	// WHEN the request is served
	rec := serve(t, p, tc.cfg, req)
	// THEN the answer has the status, headers and body wanted, and the
	// producer got the record wanted, or none for a client's mistake
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != tc.wantStatus {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.wantStatus, body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	for k, v := range tc.wantHeader {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if tc.wantStatus >= 300 {
		if msg := errorBody(t, body); !strings.Contains(msg, tc.wantError) {
			t.Errorf("error = %q, want it to contain %q", msg, tc.wantError)
		}
		if tc.wantStatus < 500 && len(p.taken()) != 0 && tc.putter == nil {
			t.Errorf("a refused request reached the producer: %v", p.taken())
		}
	} else if tc.wantResponse != "" && strings.TrimSpace(string(body)) != tc.wantResponse {
		t.Errorf("body = %s, want %s", body, tc.wantResponse)
	}
	if tc.wantRecord != nil {
		checkTakenRecord(t, p, *tc.wantRecord)
	}
}

// checkTakenRecord checks the producer got exactly one record, want.
func checkTakenRecord(t *testing.T, p *fakePutter, want kpl.Record) {
	t.Helper()
	got := p.taken()
	if len(got) != 1 {
		t.Fatalf("producer got %d records, want 1", len(got))
	}
	if string(got[0].Data) != string(want.Data) || got[0].PartitionKey != want.PartitionKey || got[0].ExplicitHashKey != want.ExplicitHashKey {
		t.Errorf("record = {pk %q, ehk %q, data %q}, want {pk %q, ehk %q, data %q}",
			got[0].PartitionKey, got[0].ExplicitHashKey, got[0].Data,
			want.PartitionKey, want.ExplicitHashKey, want.Data)
	}
}

// batchAnswer is the body of a POST /records answer.
type batchAnswer struct {
	FailedRecordCount int `json:"failedRecordCount"`
	Records           []struct {
		Status            int    `json:"status"`
		ShardID           string `json:"shardId"`
		SequenceNumber    string `json:"sequenceNumber"`
		SubSequenceNumber *int64 `json:"subSequenceNumber"`
		Error             string `json:"error"`
	} `json:"records"`
}

// batchCase is a POST /records request and the answer it must get.
type batchCase struct {
	contentType string // default application/json
	query, body string
	putter      *fakePutter // nil: one that takes every record
	cfg         Config
	wantStatus  int
	wantError   string // whole-batch error
	wantEntries []wantEntry
	// wantRetryAfter tells whether the answer carries Retry-After.
	wantRetryAfter bool
	wantTaken      []string // data of the records the producer got, in order
}

// wantEntry is the answer wanted for one record of a batch.
type wantEntry struct {
	status int
	seq    string // sequence number of a 200; error substring otherwise
}

func TestBatch(t *testing.T) {
	tests := map[string]batchCase{
		"JSON array": {
			body:        `[{"data":"a"},{"data":{"k":1},"partitionKey":"p"},{"data":"c","explicitHashKey":"5"}]`,
			wantStatus:  200,
			wantEntries: []wantEntry{{200, "seq-a"}, {200, `seq-{"k":1}`}, {200, "seq-c"}},
			wantTaken:   []string{"a", `{"k":1}`, "c"},
		},
		"invalid records fail alone": {
			body:        `[{"data":"a"},{"data":""},7,{"data":"d","bogus":1},{"data":"e","partitionKey":""}]`,
			wantStatus:  200,
			wantEntries: []wantEntry{{200, "seq-a"}, {400, `record 1: "data" is an empty string`}, {400, "record 2: expected a JSON object"}, {400, `record 3: unknown field "bogus"`}, {400, "record 4: partitionKey must be 1-256"}},
			wantTaken:   []string{"a"},
		},
		"NDJSON": {
			contentType: ContentTypeNDJSON,
			body:        "{\"data\":\"a\"}\n\n  {\"data\":\"b\"}\r\n{\"data\":\n{\"data\":\"d\"}",
			wantStatus:  200,
			wantEntries: []wantEntry{{200, "seq-a"}, {200, "seq-b"}, {400, "record 2: malformed JSON"}, {200, "seq-d"}},
			wantTaken:   []string{"a", "b", "d"},
		},
		"NDJSON with charset": {
			contentType: ContentTypeNDJSON + "; charset=utf-8",
			body:        "{\"data\":\"a\"}\n",
			wantStatus:  200,
			wantEntries: []wantEntry{{200, "seq-a"}},
		},
		"buffered": {
			query:       "?ack=buffered",
			body:        `[{"data":"a"},{"data":""}]`,
			putter:      &fakePutter{hold: true},
			wantStatus:  202,
			wantEntries: []wantEntry{{202, ""}, {400, "empty string"}},
			wantTaken:   []string{"a"},
		},
		"buffer full for some records": {
			body: `[{"data":"a"},{"data":"full"},{"data":"c"}]`,
			putter: &fakePutter{refuse: func(r kpl.Record) error {
				if string(r.Data) == "full" {
					return kpl.ErrBufferFull
				}
				return nil
			}},
			wantStatus:     200,
			wantEntries:    []wantEntry{{200, "seq-a"}, {503, "record 1: producer buffer is full"}, {200, "seq-c"}},
			wantRetryAfter: true,
			wantTaken:      []string{"a", "c"},
		},
		"Kinesis failures per record": {
			body: `[{"data":"a"},{"data":"late"}]`,
			putter: &fakePutter{outcome: func(r kpl.Record) kpl.Result {
				if string(r.Data) == "late" {
					return kpl.Result{Err: kpl.ErrRecordExpired}
				}
				return kpl.Result{ShardID: "s", SequenceNumber: "seq-a"}
			}},
			wantStatus:  200,
			wantEntries: []wantEntry{{200, "seq-a"}, {504, "record 1: Kinesis did not accept the record within its time to live"}},
		},
		"all records refused still answers per record": {
			query:          "?ack=buffered",
			body:           `[{"data":"a"},{"data":"b"}]`,
			putter:         &fakePutter{refuse: refuseWith(kpl.ErrBufferFull)},
			wantStatus:     202,
			wantEntries:    []wantEntry{{503, "buffer is full"}, {503, "buffer is full"}},
			wantRetryAfter: true,
		},
		"too many records": {
			body:       `[{"data":"a"},{"data":"b"},{"data":"c"}]`,
			cfg:        Config{MaxBatchRecords: 2},
			wantStatus: 400, wantError: "more than 2 records",
		},
		"too many NDJSON records": {
			contentType: ContentTypeNDJSON,
			body:        "{\"data\":\"a\"}\n{\"data\":\"b\"}\n{\"data\":\"c\"}\n",
			cfg:         Config{MaxBatchRecords: 2},
			wantStatus:  400, wantError: "more than 2 records",
		},
		"empty array":          {body: `[]`, wantStatus: 400, wantError: "batch is empty"},
		"empty NDJSON":         {contentType: ContentTypeNDJSON, body: "\n \n", wantStatus: 400, wantError: "batch is empty"},
		"empty body":           {body: ``, wantStatus: 400, wantError: "request body is empty"},
		"object, not array":    {body: `{"data":"a"}`, wantStatus: 400, wantError: "must be a JSON array"},
		"malformed array":      {body: `[{"data":"a"},`, wantStatus: 400, wantError: "malformed JSON"},
		"unclosed array":       {body: `[{"data":"a"}`, wantStatus: 400, wantError: "malformed JSON"},
		"data after array":     {body: `[{"data":"a"}] x`, wantStatus: 400, wantError: "malformed JSON"},
		"bad element":          {body: `[{"data":"a"} {"data":"b"}]`, wantStatus: 400, wantError: "malformed JSON"},
		"array too large":      {body: `[{"data":"` + strings.Repeat("x", 200) + `"}]`, cfg: Config{MaxBatchBodyBytes: 100}, wantStatus: 413, wantError: "limit of 100 bytes"},
		"NDJSON too large":     {contentType: ContentTypeNDJSON, body: strings.Repeat("{\"data\":\"a\"}\n", 20), cfg: Config{MaxBatchBodyBytes: 100}, wantStatus: 413, wantError: "limit of 100 bytes"},
		"unsupported type":     {contentType: "text/csv", body: "a,b", wantStatus: 415, wantError: "application/json or application/x-ndjson"},
		"unknown ack on batch": {query: "?ack=later", body: `[{"data":"a"}]`, wantStatus: 400, wantError: `ack="later"`},
	}
	for name, tc := range tests {
		t.Run(name, tc.run)
	}
}

// run serves the case's batch and checks the answer and what the producer
// got.
func (tc batchCase) run(t *testing.T) {
	// GIVEN a handler in front of the case's producer
	p := cmp.Or(tc.putter, &fakePutter{})
	req := httptest.NewRequest("POST", "/records"+tc.query, strings.NewReader(tc.body))
	req.Header.Set("Content-Type", cmp.Or(tc.contentType, ContentTypeJSON))
	// WHEN the batch is served
	rec := serve(t, p, tc.cfg, req)
	// THEN it fails as a whole, or answers each record as wanted
	body := rec.Body.Bytes()
	if rec.Code != tc.wantStatus {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.wantStatus, body)
	}
	if tc.wantError != "" {
		if msg := errorBody(t, body); !strings.Contains(msg, tc.wantError) {
			t.Errorf("error = %q, want it to contain %q", msg, tc.wantError)
		}
		if n := len(p.taken()); n != 0 {
			t.Errorf("a refused batch sent %d records to the producer", n)
		}
		return
	}
	var got batchAnswer
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body is not a batch answer: %v: %s", err, body)
	}
	checkBatchEntries(t, got, tc.wantEntries, body)
	if ra := rec.Header().Get("Retry-After"); (ra != "") != tc.wantRetryAfter {
		t.Errorf("Retry-After = %q, want present: %v", ra, tc.wantRetryAfter)
	}
	if tc.wantTaken != nil {
		var data []string
		for _, r := range p.taken() {
			data = append(data, string(r.Data))
		}
		if fmt.Sprint(data) != fmt.Sprint(tc.wantTaken) {
			t.Errorf("producer got %q, want %q", data, tc.wantTaken)
		}
	}
}

// checkBatchEntries checks a batch answer has the entries wanted, in order,
// and counts the failed ones right; body is the answer, for the messages.
func checkBatchEntries(t *testing.T, got batchAnswer, want []wantEntry, body []byte) {
	t.Helper()
	if len(got.Records) != len(want) {
		t.Fatalf("%d results, want %d: %s", len(got.Records), len(want), body)
	}
	failed := 0
	for i, w := range want {
		e := got.Records[i]
		if e.Status != w.status {
			t.Errorf("record %d: status %d, want %d (%s)", i, e.Status, w.status, body)
		}
		switch {
		case w.status == 200:
			if e.SequenceNumber != w.seq || e.ShardID == "" || e.SubSequenceNumber == nil || e.Error != "" {
				t.Errorf("record %d = %+v, want sequence number %q, a shard and a sub-sequence number", i, e, w.seq)
			}
		case w.status == 202:
			if e.SequenceNumber != "" || e.Error != "" {
				t.Errorf("record %d = %+v, want a bare 202", i, e)
			}
		default:
			failed++
			if !strings.Contains(e.Error, w.seq) || e.SequenceNumber != "" {
				t.Errorf("record %d error = %q, want it to contain %q", i, e.Error, w.seq)
			}
		}
	}
	if got.FailedRecordCount != failed {
		t.Errorf("failedRecordCount = %d, want %d", got.FailedRecordCount, failed)
	}
}

func TestBatchOfMaximumSizeKeepsOrder(t *testing.T) {
	// The fake answers every record on its own goroutine, so answers arrive
	// out of order; each result must still land at its record's index.
	var b strings.Builder
	b.WriteString("[")
	for i := range DefaultMaxBatchRecords {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"data":"r%d"}`, i)
	}
	b.WriteString("]")
	rec := serve(t, &fakePutter{}, Config{}, httptest.NewRequest("POST", "/records", strings.NewReader(b.String())))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got batchAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != DefaultMaxBatchRecords || got.FailedRecordCount != 0 {
		t.Fatalf("%d results, %d failed; want %d, 0", len(got.Records), got.FailedRecordCount, DefaultMaxBatchRecords)
	}
	for i, e := range got.Records {
		if want := fmt.Sprintf("seq-r%d", i); e.SequenceNumber != want {
			t.Fatalf("record %d has sequence number %q, want %q", i, e.SequenceNumber, want)
		}
	}
}

func TestHealthAndDrain(t *testing.T) {
	p := &fakePutter{}
	h, err := New(p, Config{})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec
	}

	if rec := do("GET", "/healthcheck", ""); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("health while serving: %d %s", rec.Code, rec.Body)
	}
	if rec := do("HEAD", "/healthcheck", ""); rec.Code != 200 {
		t.Fatalf("HEAD health while serving: %d", rec.Code)
	}

	h.Drain()
	if !h.Draining() {
		t.Fatal("Draining() = false after Drain")
	}
	rec := do("GET", "/healthcheck", "")
	if rec.Code != 503 || !strings.Contains(errorBody(t, rec.Body.Bytes()), "draining") {
		t.Fatalf("health while draining: %d %s", rec.Code, rec.Body)
	}
	// The load balancer takes a while to notice: records are still taken.
	if rec := do("POST", "/", `{"data":"during drain"}`); rec.Code != 200 {
		t.Fatalf("record while draining: %d %s", rec.Code, rec.Body)
	}

	h.StopAccepting()
	for _, path := range []string{"/", "/records"} {
		rec := do("POST", path, `{"data":"after stop"}`)
		if rec.Code != 503 || rec.Header().Get("Retry-After") != "1" || rec.Header().Get("Connection") != "close" {
			t.Errorf("POST %s after StopAccepting: %d, headers %v", path, rec.Code, rec.Header())
		}
		if msg := errorBody(t, rec.Body.Bytes()); !strings.Contains(msg, "shutting down") {
			t.Errorf("POST %s after StopAccepting: error %q", path, msg)
		}
	}
	if rec := do("GET", "/healthcheck", ""); rec.Code != 503 {
		t.Errorf("health after StopAccepting: %d", rec.Code)
	}
	h.Drain() // must not move back from stopped
	if rec := do("POST", "/", `{"data":"x"}`); rec.Code != 503 {
		t.Errorf("Drain after StopAccepting reopened the service: %d", rec.Code)
	}
	if n := len(p.taken()); n != 1 {
		t.Errorf("producer got %d records, want only the one sent while draining", n)
	}
}

func TestClientLeavingDoesNotBlock(t *testing.T) {
	// A stalled producer and a client that gives up: the handler returns
	// instead of waiting forever.
	h, err := New(&fakePutter{hold: true}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/records"} {
		body := `{"data":"x"}`
		if path == "/records" {
			body = "[" + body + "]"
		}
		ctx, cancel := context.WithCancel(t.Context())
		req := httptest.NewRequest("POST", path, strings.NewReader(body)).WithContext(ctx)
		served := make(chan struct{})
		go func() {
			h.ServeHTTP(httptest.NewRecorder(), req)
			close(served)
		}()
		cancel()
		<-served
	}
}

func TestMetrics(t *testing.T) {
	// In a bubble, synctest.Wait lets the fake's answering goroutines finish.
	synctest.Test(t, func(t *testing.T) {
		m := &countingMetrics{}
		p := &fakePutter{refuse: func(r kpl.Record) error {
			if string(r.Data) == "full" {
				return kpl.ErrBufferFull
			}
			return nil
		}, outcome: func(r kpl.Record) kpl.Result {
			if string(r.Data) == "late" {
				return kpl.Result{Err: kpl.ErrRecordExpired}
			}
			return kpl.Result{ShardID: "s", SequenceNumber: "1"}
		}}
		h, err := New(p, Config{Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{`{"data":"ok"}`, `{"data":"ok"}`, `{"data":""}`, `{"data":"full"}`, `{"data":"late"}`} {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(body)))
		}
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/?ack=buffered", strings.NewReader(`{"data":"late"}`)))
		synctest.Wait()

		want := map[string]float64{Requests2xx: 3, Requests4xx: 1, Requests5xx: 2, RejectedBufferFull: 1, RecordsFailed: 1, BufferedRecordsFailed: 1}
		m.mu.Lock()
		defer m.mu.Unlock()
		for name, n := range want {
			if m.counts[name] != n {
				t.Errorf("%s = %v, want %v (all: %v)", name, m.counts[name], n, m.counts)
			}
		}
		if m.obs[RequestLatency] != 6 {
			t.Errorf("%d latency observations, want 6", m.obs[RequestLatency])
		}
	})
}

func TestNewValidatesConfig(t *testing.T) {
	tests := map[string]struct {
		putter recordPutter
		cfg    Config
		want   string
	}{
		"nil producer":           {nil, Config{}, "nil producer"},
		"negative record body":   {&fakePutter{}, Config{MaxRecordBodyBytes: -1}, "MaxRecordBodyBytes"},
		"negative batch body":    {&fakePutter{}, Config{MaxBatchBodyBytes: -1}, "MaxBatchBodyBytes"},
		"negative batch records": {&fakePutter{}, Config{MaxBatchRecords: -1}, "MaxBatchRecords"},
		"negative retry after":   {&fakePutter{}, Config{RetryAfter: -time.Second}, "RetryAfter"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.putter, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want one naming %s", err, tc.want)
			}
		})
	}
}
