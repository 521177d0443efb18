// Package ingest serves the producer's HTTP API: it validates JSON records,
// hands them to the KPL producer engine (package kpl) and answers once Kinesis
// has accepted them, or, when the client opts in with ?ack=buffered, once they
// are in the producer's bounded buffer.
//
// Routes:
//
//	POST /             one record: {"data": ..., "partitionKey": "...", "explicitHashKey": "..."}
//	POST /records      a batch: a JSON array of such objects, or NDJSON (Content-Type: application/x-ndjson)
//	GET  /healthcheck  200 while serving, 503 while draining
//
// Every answer other than a 2xx has a JSON body {"error": "..."} saying what
// was wrong. A client's mistake is a 4xx, never a 5xx.
package ingest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/telemetry"
)

// Routes served by Handler.
const (
	// PathRecord takes one record.
	PathRecord = "/"
	// PathRecords takes a batch of records.
	PathRecords = "/records"
	// PathHealthcheck answers the load balancer's health checks.
	PathHealthcheck = "/healthcheck"
)

// Media types accepted in Content-Type.
const (
	// ContentTypeJSON is a single record object, or a JSON array of them on PathRecords.
	ContentTypeJSON = "application/json"
	// ContentTypeNDJSON is newline-delimited record objects, on PathRecords only.
	ContentTypeNDJSON = "application/x-ndjson"
)

// Query parameter that selects the acknowledgement.
const (
	// QueryAck names the acknowledgement parameter: ?ack=buffered.
	QueryAck = "ack"
	// AckBuffered answers 202 once the record is in the producer's buffer.
	AckBuffered = "buffered"
	// AckKinesis (the default) answers 200 once Kinesis has accepted the record.
	AckKinesis = "kinesis"
)

// Defaults of Config.
const (
	// DefaultMaxRecordBodyBytes bounds a POST / body: a 1 MiB record (the
	// Kinesis limit) with room for JSON escaping and keys.
	DefaultMaxRecordBodyBytes = 2 << 20
	// DefaultMaxBatchBodyBytes bounds a POST /records body (the PutRecords limit).
	DefaultMaxBatchBodyBytes = 5 << 20
	// DefaultMaxBatchRecords bounds the records of one batch (the PutRecords limit).
	DefaultMaxBatchRecords = 500
	// DefaultRetryAfter is the Retry-After sent with a 503.
	DefaultRetryAfter = time.Second
)

// recordPutter is the part of the producer engine (*kpl.Producer) the handler uses.
type recordPutter interface {
	// PutAsync buffers r without blocking and later calls done with the
	// outcome, or refuses r at once with an error.
	PutAsync(r kpl.Record, done func(kpl.Result)) error
}

// Config tunes a Handler. The zero value means the documented defaults.
type Config struct {
	// MaxRecordBodyBytes bounds the body of POST /.
	// Default: DefaultMaxRecordBodyBytes (2 MiB).
	MaxRecordBodyBytes int64
	// MaxBatchBodyBytes bounds the body of POST /records.
	// Default: DefaultMaxBatchBodyBytes (5 MiB).
	MaxBatchBodyBytes int64
	// MaxBatchRecords bounds the number of records in one batch.
	// Default: DefaultMaxBatchRecords (500).
	MaxBatchRecords int
	// RetryAfter is sent in the Retry-After header of a 503, rounded up to
	// whole seconds. Default: DefaultRetryAfter (1 s).
	RetryAfter time.Duration
	// Metrics receives request latency and counts (see the metric name
	// constants). Default: none recorded.
	Metrics telemetry.Recorder
	// Logger receives the few events worth a log line (unexpected producer
	// errors). Default: discarded.
	Logger *slog.Logger
}

// Handler serves the ingest API in front of a producer. It is an
// http.Handler; create it with New.
type Handler struct {
	putter     recordPutter
	cfg        Config
	retryAfter string // Retry-After value, precomputed
	state      atomic.Int32
	// onBufferedResult is the done callback of records acknowledged as
	// buffered: built once so an async put allocates no closure.
	onBufferedResult func(kpl.Result)
}

// Serving states: Drain and StopAccepting move forward only.
const (
	stateServing  int32 = iota
	stateDraining       // health check 503, records still taken
	stateStopped        // everything 503: the server is shutting down
)

// New returns a Handler that sends records to p, which is usually a
// *kpl.Producer.
func New(p recordPutter, cfg Config) (*Handler, error) {
	if p == nil {
		return nil, errors.New("ingest: nil producer")
	}
	switch {
	case cfg.MaxRecordBodyBytes < 0:
		return nil, fmt.Errorf("ingest: MaxRecordBodyBytes is %d, want >= 0 (0 means %d)", cfg.MaxRecordBodyBytes, DefaultMaxRecordBodyBytes)
	case cfg.MaxBatchBodyBytes < 0:
		return nil, fmt.Errorf("ingest: MaxBatchBodyBytes is %d, want >= 0 (0 means %d)", cfg.MaxBatchBodyBytes, DefaultMaxBatchBodyBytes)
	case cfg.MaxBatchRecords < 0:
		return nil, fmt.Errorf("ingest: MaxBatchRecords is %d, want >= 0 (0 means %d)", cfg.MaxBatchRecords, DefaultMaxBatchRecords)
	case cfg.RetryAfter < 0:
		return nil, fmt.Errorf("ingest: RetryAfter is %v, want >= 0 (0 means %v)", cfg.RetryAfter, DefaultRetryAfter)
	}
	cfg.MaxRecordBodyBytes = cmp.Or(cfg.MaxRecordBodyBytes, DefaultMaxRecordBodyBytes)
	cfg.MaxBatchBodyBytes = cmp.Or(cfg.MaxBatchBodyBytes, DefaultMaxBatchBodyBytes)
	cfg.MaxBatchRecords = cmp.Or(cfg.MaxBatchRecords, DefaultMaxBatchRecords)
	cfg.RetryAfter = cmp.Or(cfg.RetryAfter, DefaultRetryAfter)
	cfg.Metrics = cmp.Or(cfg.Metrics, telemetry.Discard)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	h := &Handler{
		putter:     p,
		cfg:        cfg,
		retryAfter: strconv.FormatInt(int64((cfg.RetryAfter+time.Second-1)/time.Second), 10),
	}
	h.onBufferedResult = h.bufferedResult
	return h, nil
}

// Drain turns the health check to 503 so the load balancer stops sending
// new connections; records are still taken until StopAccepting.
func (h *Handler) Drain() {
	h.state.CompareAndSwap(stateServing, stateDraining)
}

// StopAccepting refuses every further request with 503 and Retry-After (and
// closes its connection). Call it right before http.Server.Shutdown.
func (h *Handler) StopAccepting() {
	h.state.Store(stateStopped)
}

// Draining reports whether Drain or StopAccepting was called.
func (h *Handler) Draining() bool {
	return h.state.Load() != stateServing
}

// ServeHTTP routes a request and records its latency and status.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	status := h.route(w, r)
	h.cfg.Metrics.Observe(RequestLatency, telemetry.UnitMilliseconds, float64(time.Since(start))/float64(time.Millisecond))
	h.cfg.Metrics.Add(requestsMetric(status), telemetry.UnitCount, 1)
}

// route serves the request and returns the status it answered with.
func (h *Handler) route(w http.ResponseWriter, r *http.Request) int {
	switch r.URL.Path {
	case PathHealthcheck:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, r, "GET, HEAD")
		}
		return h.serveHealth(w)
	case PathRecord, PathRecords:
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, r, "POST")
		}
		if h.state.Load() == stateStopped {
			w.Header().Set("Connection", "close")
			return h.unavailable(w, "service is shutting down")
		}
		if r.URL.Path == PathRecord {
			return h.serveRecord(w, r)
		}
		return h.serveBatch(w, r)
	default:
		return writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s: routes are POST %s, POST %s and GET %s",
			r.Method, r.URL.Path, PathRecord, PathRecords, PathHealthcheck))
	}
}

func (h *Handler) serveHealth(w http.ResponseWriter) int {
	if h.Draining() {
		return writeError(w, http.StatusServiceUnavailable, "draining: the service is shutting down")
	}
	return writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
}

// serveRecord takes one record.
func (h *Handler) serveRecord(w http.ResponseWriter, r *http.Request) int {
	if _, err := mediaType(r, false); err != nil {
		return writeError(w, err.status, err.msg)
	}
	buffered, err := ackMode(r)
	if err != nil {
		return writeError(w, err.status, err.msg)
	}
	rec, err := decodeSingle(http.MaxBytesReader(w, r.Body, h.cfg.MaxRecordBodyBytes))
	if err != nil {
		return writeError(w, err.status, err.msg)
	}
	if buffered {
		if perr := h.putter.PutAsync(rec, h.onBufferedResult); perr != nil {
			return h.writePutError(w, perr)
		}
		return writeJSON(w, http.StatusAccepted, bufferedResponse{Buffered: true})
	}
	results := make(chan kpl.Result, 1)
	if perr := h.putter.PutAsync(rec, func(res kpl.Result) { results <- res }); perr != nil {
		return h.writePutError(w, perr)
	}
	select {
	case res := <-results:
		if res.Err != nil {
			status, msg := h.resultError(res.Err)
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", h.retryAfter)
			}
			return writeError(w, status, msg)
		}
		return writeJSON(w, http.StatusOK, putResponse{
			ShardID:           res.ShardID,
			SequenceNumber:    res.SequenceNumber,
			SubSequenceNumber: res.SubSequenceNumber,
		})
	case <-r.Context().Done():
		// The client left; the record stays in flight and is still delivered.
		return statusClientClosedRequest
	}
}

// statusClientClosedRequest is recorded (never sent) when the client left
// before its acknowledgement, as nginx does.
const statusClientClosedRequest = 499

// serveBatch takes a batch and answers with one result per record, in order.
// The batch itself answers 200 (202 with ?ack=buffered) whenever it could be
// read, like Kinesis PutRecords: failedRecordCount and each record's status
// say which records failed. A body that cannot be read as a batch at all
// fails as a whole with a 4xx.
func (h *Handler) serveBatch(w http.ResponseWriter, r *http.Request) int {
	items, buffered, err := h.readBatch(w, r)
	if err != nil {
		return writeError(w, err.status, err.msg)
	}
	resp := batchResponse{Records: make([]batchEntry, len(items))}
	acks := newPendingAcks()
	for i, item := range items {
		h.putBatchItem(i, item, &resp.Records[i], buffered, acks)
	}
	acks.release() // every record is submitted
	select {
	case <-acks.done:
	case <-r.Context().Done():
		return statusClientClosedRequest
	}
	resp.FailedRecordCount = h.countFailed(w, resp.Records)
	if buffered {
		return writeJSON(w, http.StatusAccepted, resp)
	}
	return writeJSON(w, http.StatusOK, resp)
}

// readBatch checks a batch request's Content-Type and acknowledgement mode
// (buffered is true for ?ack=buffered) and decodes its records, as a JSON
// array or as NDJSON. Records that are invalid on their own come back as
// items with an error; an error here fails the whole batch.
func (h *Handler) readBatch(w http.ResponseWriter, r *http.Request) (items []batchItem, buffered bool, err *requestError) {
	mt, err := mediaType(r, true)
	if err != nil {
		return nil, false, err
	}
	if buffered, err = ackMode(r); err != nil {
		return nil, false, err
	}
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBatchBodyBytes)
	if mt == ContentTypeNDJSON {
		items, err = decodeNDJSONBatch(body, h.cfg.MaxBatchRecords)
	} else {
		items, err = decodeJSONBatch(body, h.cfg.MaxBatchRecords)
	}
	if err != nil {
		return nil, false, err
	}
	return items, buffered, nil
}

// pendingAcks counts the acknowledgements a batch still waits for, plus one
// held by the goroutine submitting its records until it has submitted them
// all; whoever brings the count to zero closes done.
type pendingAcks struct {
	n    atomic.Int64
	done chan struct{}
}

func newPendingAcks() *pendingAcks {
	a := &pendingAcks{done: make(chan struct{})}
	a.n.Store(1)
	return a
}

func (a *pendingAcks) add() { a.n.Add(1) }

func (a *pendingAcks) release() {
	if a.n.Add(-1) == 0 {
		close(a.done)
	}
}

// putBatchItem hands record i of a batch to the producer and sets its entry:
// at once for a record that is invalid, refused or (buffered) accepted into
// the buffer; otherwise from the producer's callback, which acks waits for.
func (h *Handler) putBatchItem(i int, item batchItem, entry *batchEntry, buffered bool, acks *pendingAcks) {
	if item.err != nil {
		*entry = failedEntry(i, item.err.status, item.err.msg)
		return
	}
	var err error
	if buffered {
		if err = h.putter.PutAsync(item.rec, h.onBufferedResult); err == nil {
			*entry = batchEntry{Status: http.StatusAccepted}
			return
		}
	} else {
		acks.add()
		if err = h.putter.PutAsync(item.rec, func(res kpl.Result) {
			*entry = h.resultEntry(i, res)
			acks.release()
		}); err == nil {
			return
		}
		acks.release() // never the last: the submitting goroutine still holds its own count
	}
	status, msg := h.putError(err)
	*entry = failedEntry(i, status, msg)
}

// resultEntry is the entry of record i of a batch, which the producer
// finished with res.
func (h *Handler) resultEntry(i int, res kpl.Result) batchEntry {
	if res.Err != nil {
		status, msg := h.resultError(res.Err)
		return failedEntry(i, status, msg)
	}
	sub := res.SubSequenceNumber
	return batchEntry{Status: http.StatusOK, ShardID: res.ShardID, SequenceNumber: res.SequenceNumber, SubSequenceNumber: &sub}
}

// failedEntry is the entry of record i of a batch that failed with status
// and msg.
func failedEntry(i, status int, msg string) batchEntry {
	return batchEntry{Status: status, Error: fmt.Sprintf("record %d: %s", i, msg)}
}

// countFailed returns how many entries failed, and sets Retry-After when
// one of them is a 503 (worth retrying later).
func (h *Handler) countFailed(w http.ResponseWriter, entries []batchEntry) int {
	failed := 0
	for _, e := range entries {
		if e.Status >= 300 {
			failed++
			if e.Status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", h.retryAfter)
			}
		}
	}
	return failed
}

// bufferedResult counts records that failed after they were acknowledged as
// buffered: their client has already had its 202.
func (h *Handler) bufferedResult(res kpl.Result) {
	if res.Err != nil {
		h.cfg.Metrics.Add(BufferedRecordsFailed, telemetry.UnitCount, 1)
	}
}

// writePutError answers a record the producer refused at once.
func (h *Handler) writePutError(w http.ResponseWriter, err error) int {
	status, msg := h.putError(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", h.retryAfter)
	}
	return writeError(w, status, msg)
}

// putError maps an error of PutAsync to a status and message.
func (h *Handler) putError(err error) (int, string) {
	var invalid *kpl.InvalidRecordError
	switch {
	case errors.Is(err, kpl.ErrBufferFull):
		h.cfg.Metrics.Add(RejectedBufferFull, telemetry.UnitCount, 1)
		return http.StatusServiceUnavailable, "producer buffer is full: retry later"
	case errors.Is(err, kpl.ErrClosed):
		return http.StatusServiceUnavailable, "service is shutting down"
	case errors.Is(err, kpl.ErrNotStarted):
		return http.StatusServiceUnavailable, "service is starting"
	case errors.Is(err, kpl.ErrRecordTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.As(err, &invalid):
		return http.StatusBadRequest, invalid.Error()
	default:
		h.cfg.Logger.Error("producer refused a record", telemetry.LogKeyError, err)
		return http.StatusInternalServerError, "internal error: the producer refused the record"
	}
}

// resultError maps the error of a record that the producer took but could
// not get into Kinesis. None of these is the client's fault.
func (h *Handler) resultError(err error) (int, string) {
	h.cfg.Metrics.Add(RecordsFailed, telemetry.UnitCount, 1)
	switch {
	case errors.Is(err, kpl.ErrRecordExpired):
		return http.StatusGatewayTimeout, "Kinesis did not accept the record within its time to live: " + err.Error()
	case errors.Is(err, kpl.ErrClosed):
		return http.StatusServiceUnavailable, "service shut down before Kinesis accepted the record"
	default:
		return http.StatusServiceUnavailable, "Kinesis did not accept the record: " + err.Error()
	}
}

func (h *Handler) unavailable(w http.ResponseWriter, msg string) int {
	w.Header().Set("Retry-After", h.retryAfter)
	return writeError(w, http.StatusServiceUnavailable, msg)
}

// mediaType checks Content-Type. An absent Content-Type is read as JSON;
// NDJSON is allowed on the batch route only; a charset, if given, must be UTF-8.
func mediaType(r *http.Request, batch bool) (string, *requestError) {
	ct := r.Header.Get("Content-Type")
	if ct == "" || ct == ContentTypeJSON {
		return ContentTypeJSON, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", unsupported(ct, batch)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", &requestError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("unsupported charset %q: only utf-8", cs)}
	}
	switch {
	case mt == ContentTypeJSON, batch && mt == ContentTypeNDJSON:
		return mt, nil
	default:
		return "", unsupported(ct, batch)
	}
}

func unsupported(ct string, batch bool) *requestError {
	want := ContentTypeJSON
	if batch {
		want += " or " + ContentTypeNDJSON
	}
	return &requestError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("unsupported Content-Type %q: use %s", ct, want)}
}

// ackMode reads ?ack=: true for buffered. Unknown query parameters are
// refused, so a typo does not silently change the acknowledgement.
func ackMode(r *http.Request) (bool, *requestError) {
	if r.URL.RawQuery == "" {
		return false, nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return false, badRequest("malformed query string: %v", err)
	}
	buffered := false
	for k, vs := range q {
		if k != QueryAck {
			return false, badRequest("unknown query parameter %q: only %q", k, QueryAck)
		}
		if len(vs) != 1 {
			return false, badRequest("query parameter %q given %d times", QueryAck, len(vs))
		}
		switch vs[0] {
		case AckBuffered:
			buffered = true
		case AckKinesis:
		default:
			return false, badRequest("%s=%q: want %q or %q", QueryAck, vs[0], AckKinesis, AckBuffered)
		}
	}
	return buffered, nil
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) int {
	w.Header().Set("Allow", allow)
	return writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s: use %s", r.Method, r.URL.Path, allow))
}

// Response bodies.
type (
	putResponse struct {
		ShardID           string `json:"shardId"`
		SequenceNumber    string `json:"sequenceNumber"`
		SubSequenceNumber int64  `json:"subSequenceNumber"`
	}
	bufferedResponse struct {
		Buffered bool `json:"buffered"`
	}
	batchEntry struct {
		Status            int    `json:"status"`
		ShardID           string `json:"shardId,omitempty"`
		SequenceNumber    string `json:"sequenceNumber,omitempty"`
		SubSequenceNumber *int64 `json:"subSequenceNumber,omitempty"`
		Error             string `json:"error,omitempty"`
	}
	batchResponse struct {
		FailedRecordCount int          `json:"failedRecordCount"`
		Records           []batchEntry `json:"records"`
	}
	healthResponse struct {
		Status string `json:"status"`
	}
	errorResponse struct {
		Error string `json:"error"`
	}
)

func writeError(w http.ResponseWriter, status int, msg string) int {
	return writeJSON(w, status, errorResponse{Error: msg})
}

// writeJSON answers with v as JSON; v is always one of the response types
// above, which cannot fail to marshal.
func writeJSON(w http.ResponseWriter, status int, v any) int {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
	return status
}
