package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"unicode/utf8"

	"github.com/streamproc/streamproc/services/kpl"
)

// Limits of a Kinesis record's keys.
const (
	// MaxPartitionKeyChars is the longest partition key Kinesis accepts, in Unicode characters.
	MaxPartitionKeyChars = 256
	// maxExplicitHashKeyDigits bounds the text parsed as an explicit hash key:
	// 2^128-1 has 39 digits; leading zeros beyond that are refused rather than parsed.
	maxExplicitHashKeyDigits = 39
)

// maxHashKey is 2^128-1, the largest explicit hash key Kinesis accepts.
var maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// recordRequest is the JSON object a client sends for one record.
type recordRequest struct {
	Data            json.RawMessage `json:"data"`
	PartitionKey    *string         `json:"partitionKey"`
	ExplicitHashKey *string         `json:"explicitHashKey"`
}

// requestError is a problem with a request or one record of a batch, with the
// HTTP status it maps to and a message for the client.
type requestError struct {
	status int
	msg    string
}

// Error implements error: the message for the client.
func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// decodeSingle reads one record object from body: exactly one JSON object and
// nothing but white space after it.
func decodeSingle(body io.Reader) (kpl.Record, *requestError) {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var req recordRequest
	if err := dec.Decode(&req); err != nil {
		return kpl.Record{}, jsonError(err, dec.InputOffset())
	}
	if err := expectEOF(dec); err != nil {
		return kpl.Record{}, err
	}
	return req.record()
}

// expectEOF checks that nothing but white space follows the value dec has decoded.
func expectEOF(dec *json.Decoder) *requestError {
	_, err := dec.Token()
	switch {
	case err == io.EOF:
		return nil
	case err == nil:
		return badRequest("malformed JSON: unexpected data after the JSON value at byte %d", dec.InputOffset())
	default:
		return jsonError(err, dec.InputOffset())
	}
}

// decodeRecordJSON parses one record object held in memory (a batch element
// or an NDJSON line).
func decodeRecordJSON(raw []byte) (kpl.Record, *requestError) {
	return decodeSingle(bytes.NewReader(raw))
}

// batchItem is one record of a batch, or the reason it cannot be sent.
type batchItem struct {
	rec kpl.Record
	err *requestError
}

// decodeJSONBatch reads a JSON array of record objects. A body that is not a
// well-formed array fails as a whole; an element that is valid JSON but not a
// valid record fails alone.
func decodeJSONBatch(body io.Reader, maxRecords int) ([]batchItem, *requestError) {
	dec := json.NewDecoder(body)
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(err, dec.InputOffset())
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, badRequest("a batch must be a JSON array of record objects (or NDJSON with Content-Type: application/x-ndjson)")
	}
	var raws []json.RawMessage
	for dec.More() {
		if len(raws) == maxRecords {
			return nil, badRequest("batch has more than %d records", maxRecords)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonError(midValue(err), dec.InputOffset())
		}
		raws = append(raws, raw)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, jsonError(midValue(err), dec.InputOffset())
	}
	if err := expectEOF(dec); err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, badRequest("batch is empty")
	}
	items := make([]batchItem, len(raws))
	for i, raw := range raws {
		items[i].rec, items[i].err = decodeRecordJSON(raw)
	}
	return items, nil
}

// decodeNDJSONBatch reads newline-delimited record objects, one per line.
// Blank lines are skipped; a line that is not a valid record fails alone.
func decodeNDJSONBatch(body io.Reader, maxRecords int) ([]batchItem, *requestError) {
	r := bufio.NewReader(body)
	var items []batchItem
	for {
		line, err := r.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, readError(err)
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			if len(items) == maxRecords {
				return nil, badRequest("batch has more than %d records", maxRecords)
			}
			var item batchItem
			item.rec, item.err = decodeRecordJSON(trimmed)
			items = append(items, item)
		}
		if err == io.EOF {
			break
		}
	}
	if len(items) == 0 {
		return nil, badRequest("batch is empty")
	}
	return items, nil
}

// record validates the request and turns it into the record handed to the producer.
func (req *recordRequest) record() (kpl.Record, *requestError) {
	data, rerr := recordData(req.Data)
	if rerr != nil {
		return kpl.Record{}, rerr
	}
	rec := kpl.Record{Data: data}
	if req.PartitionKey != nil {
		n := utf8.RuneCountInString(*req.PartitionKey)
		if n < 1 || n > MaxPartitionKeyChars {
			return kpl.Record{}, badRequest("partitionKey must be 1-%d characters, got %d", MaxPartitionKeyChars, n)
		}
		rec.PartitionKey = *req.PartitionKey
	}
	if req.ExplicitHashKey != nil {
		if err := validateExplicitHashKey(*req.ExplicitHashKey); err != nil {
			return kpl.Record{}, err
		}
		rec.ExplicitHashKey = *req.ExplicitHashKey
	}
	return rec, nil
}

// recordData turns the "data" value into the record's bytes: a JSON string
// becomes its UTF-8 bytes, any other value its compact JSON text.
func recordData(raw json.RawMessage) ([]byte, *requestError) {
	if len(raw) == 0 {
		return nil, badRequest(`missing "data": expected a JSON string or value`)
	}
	switch raw[0] {
	case 'n': // the decoder only lets the literal null start with 'n'
		return nil, badRequest(`"data" is null: expected a JSON string or value`)
	case '"':
		data, err := unquote(raw)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			return nil, badRequest(`"data" is an empty string`)
		}
		return data, nil
	default:
		var buf bytes.Buffer
		buf.Grow(len(raw))
		if err := json.Compact(&buf, raw); err != nil {
			// raw was produced by the decoder, so it is valid JSON.
			return nil, badRequest("malformed JSON in \"data\": %v", err)
		}
		return buf.Bytes(), nil
	}
}

// unquote returns the UTF-8 bytes of a JSON string literal. Strings without
// escapes and with valid UTF-8 (the common case) are sliced, not copied: raw
// is the decoder's private copy of the input.
func unquote(raw json.RawMessage) ([]byte, *requestError) {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, badRequest("malformed JSON string in \"data\": %v", err)
	}
	return []byte(s), nil
}

// validateExplicitHashKey checks s is a decimal integer in 0..2^128-1.
func validateExplicitHashKey(s string) *requestError {
	if s == "" || len(s) > maxExplicitHashKeyDigits {
		return badRequest("explicitHashKey must be a decimal integer from 0 to 2^128-1 (1-%d digits), got %d characters", maxExplicitHashKeyDigits, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return badRequest("explicitHashKey must be a decimal integer from 0 to 2^128-1, got %q", s)
		}
	}
	if len(s) == maxExplicitHashKeyDigits {
		v, _ := new(big.Int).SetString(s, 10) // digits only: cannot fail
		if v.Cmp(maxHashKey) > 0 {
			return badRequest("explicitHashKey %s is larger than 2^128-1", s)
		}
	}
	return nil
}

// jsonError explains a decoding error to the client.
func jsonError(err error, offset int64) *requestError {
	var (
		syntaxErr  *json.SyntaxError
		typeErr    *json.UnmarshalTypeError
		maxErr     *http.MaxBytesError
		unknownErr = "json: unknown field "
	)
	switch {
	case errors.As(err, &maxErr):
		return tooLarge(maxErr.Limit)
	case err == io.EOF:
		return badRequest("request body is empty: expected JSON")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of input at byte %d", offset)
	case errors.As(err, &syntaxErr):
		return badRequest("malformed JSON at byte %d: %v", syntaxErr.Offset, trimJSONPrefix(syntaxErr.Error()))
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badRequest("expected a JSON object with a \"data\" field, got a JSON %s", typeErr.Value)
		}
		return badRequest("field %q must be a string, got a JSON %s", typeErr.Field, typeErr.Value)
	case len(err.Error()) > len(unknownErr) && err.Error()[:len(unknownErr)] == unknownErr:
		// encoding/json has no typed error for DisallowUnknownFields.
		return badRequest("unknown field %s: allowed fields are \"data\", \"partitionKey\" and \"explicitHashKey\"", err.Error()[len(unknownErr):])
	default:
		return readError(err)
	}
}

// midValue turns io.EOF met inside a value into io.ErrUnexpectedEOF, so
// that a truncated body is not reported as an empty one.
func midValue(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readError explains an error reading the body itself.
func readError(err error) *requestError {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return tooLarge(maxErr.Limit)
	}
	return badRequest("reading request body: %v", err)
}

func tooLarge(limit int64) *requestError {
	return &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
}

func trimJSONPrefix(s string) string {
	const p = "json: "
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
