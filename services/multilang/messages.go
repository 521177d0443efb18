package multilang

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/streamproc/streamproc/services/kcl"
)

// Actions of the MultiLang protocol. The host sends the first six and checkpoint answers; the child sends
// checkpoint requests and status.
const (
	actionInitialize        = "initialize"
	actionProcessRecords    = "processRecords"
	actionLeaseLost         = "leaseLost"
	actionShardEnded        = "shardEnded"
	actionShutdownRequested = "shutdownRequested"
	// actionShutdown replaces leaseLost (reason ZOMBIE) and shardEnded (reason TERMINATE) in protocol version 1.
	actionShutdown   = "shutdown"
	actionCheckpoint = "checkpoint"
	actionStatus     = "status"
)

// Shutdown reasons of protocol version 1.
const (
	reasonZombie    = "ZOMBIE"
	reasonTerminate = "TERMINATE"
)

// Names of the Java exceptions the daemon puts in a checkpoint answer's error field; record processors compare
// against them (amazon_kclpy's samples retry on ThrottlingException and stop on ShutdownException).
const (
	// errorInvalidState: a checkpoint asked where none is possible (during initialize or after leaseLost).
	errorInvalidState = "InvalidStateException"
	// errorShutdown: the lease is no longer held.
	errorShutdown = "ShutdownException"
	// errorIllegalArgument: a position before the last checkpoint, past the last delivered record, or malformed.
	errorIllegalArgument = "IllegalArgumentException"
	// errorThrottling: DynamoDB throttled the checkpoint write; it may be retried.
	errorThrottling = "ThrottlingException"
	// errorDependency: the checkpoint write failed for another reason (DynamoDB unreachable).
	errorDependency = "KinesisClientLibDependencyException"
)

// childMessage is a message the child sends: a checkpoint request or the status that ends an action.
type childMessage struct {
	// Action is actionCheckpoint or actionStatus.
	Action string
	// ResponseFor is the action a status ends.
	ResponseFor string
	// SequenceNumber is the checkpoint's position; nil means "every record delivered so far".
	SequenceNumber *string
	// SubSequenceNumber is the position inside an aggregate; nil means 0 with a sequence number.
	SubSequenceNumber *int64
}

// errNotAMessage marks a line on the child's stdout that is not a protocol message (no JSON object with an
// action): the Java daemon logs and skips such lines, as sample processors print to stdout.
var errNotAMessage = errors.New("not a MultiLang message")

// errProtocol marks a message that breaks the protocol: an action the child may not send, or a malformed field.
var errProtocol = errors.New("MultiLang protocol violation")

// decodeChildMessage decodes one line the child wrote. A line that is not a JSON object with a string action is
// errNotAMessage; a message with an action the child may not send, or with fields of the wrong type, is errProtocol.
func decodeChildMessage(line []byte) (childMessage, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return childMessage{}, errNotAMessage
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return childMessage{}, errNotAMessage
	}
	var action string
	if raw, ok := fields["action"]; !ok || json.Unmarshal(raw, &action) != nil {
		return childMessage{}, errNotAMessage
	}
	m := childMessage{Action: action}
	switch action {
	case actionStatus:
		if err := decodeField(fields, "responseFor", &m.ResponseFor); err != nil || m.ResponseFor == "" {
			return m, fmt.Errorf("%w: status without a responseFor action", errProtocol)
		}
	case actionCheckpoint:
		if err := decodeField(fields, "sequenceNumber", &m.SequenceNumber); err != nil {
			return m, fmt.Errorf("%w: checkpoint sequenceNumber: %w", errProtocol, err)
		}
		if err := decodeSubSequenceNumber(fields["subSequenceNumber"], &m.SubSequenceNumber); err != nil {
			return m, fmt.Errorf("%w: checkpoint subSequenceNumber: %w", errProtocol, err)
		}
	default:
		return m, fmt.Errorf("%w: a child may send %q or %q, not %q", errProtocol, actionCheckpoint, actionStatus, action)
	}
	return m, nil
}

// decodeField decodes fields[name] into v when present and not null.
func decodeField(fields map[string]json.RawMessage, name string, v any) error {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// decodeSubSequenceNumber accepts a whole number, or a string of one (a processor may echo a record's field as
// text), or null.
func decodeSubSequenceNumber(raw json.RawMessage, dst **int64) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		raw = json.RawMessage(text)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not a whole number", raw)
	}
	*dst = &n
	return nil
}

// messageWriter builds the host's messages, one JSON line each, reusing its buffer: processRecords is on the hot
// path (thousands of records a call), so it is written by hand instead of through encoding/json.
type messageWriter struct {
	buf []byte
}

// initialize is {"action":"initialize","shardId":...,"sequenceNumber":...,"subSequenceNumber":...}. Both positions
// are always present (amazon_kclpy reads them unconditionally), as the checkpoint the shard is read after.
func (w *messageWriter) initialize(in kcl.InitializeInput) []byte {
	b := append(w.buf[:0], `{"action":"initialize","shardId":`...)
	b = appendString(b, in.ShardID)
	b = append(b, `,"sequenceNumber":`...)
	b = appendString(b, in.Checkpoint)
	b = append(b, `,"subSequenceNumber":`...)
	b = strconv.AppendInt(b, in.CheckpointSubSequenceNumber, 10)
	return w.end(b)
}

// processRecords is {"action":"processRecords","records":[...],"millisBehindLatest":...}; each record as the Java
// daemon's JsonFriendlyRecord: data in base64, the arrival time in epoch milliseconds.
func (w *messageWriter) processRecords(in kcl.ProcessRecordsInput) []byte {
	b := append(w.buf[:0], `{"action":"processRecords","records":[`...)
	for i, r := range in.Records {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"action":"record","data":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.Data)
		b = append(b, `","partitionKey":`...)
		b = appendString(b, r.PartitionKey)
		b = append(b, `,"sequenceNumber":`...)
		b = appendString(b, r.SequenceNumber)
		b = append(b, `,"subSequenceNumber":`...)
		b = strconv.AppendInt(b, r.SubSequenceNumber, 10)
		b = append(b, `,"approximateArrivalTimestamp":`...)
		b = strconv.AppendInt(b, r.ApproximateArrivalTimestamp.UnixMilli(), 10)
		b = append(b, '}')
	}
	b = append(b, `],"millisBehindLatest":`...)
	b = strconv.AppendInt(b, in.MillisBehindLatest, 10)
	return w.end(b)
}

// action is a message with no field but its action: leaseLost, shardEnded, shutdownRequested.
func (w *messageWriter) action(action string) []byte {
	b := append(w.buf[:0], `{"action":`...)
	b = appendString(b, action)
	return w.end(b)
}

// shutdown is protocol version 1's {"action":"shutdown","reason":"ZOMBIE"|"TERMINATE"}.
func (w *messageWriter) shutdown(reason string) []byte {
	b := append(w.buf[:0], `{"action":"shutdown","reason":`...)
	b = appendString(b, reason)
	return w.end(b)
}

// checkpointAnswer is {"action":"checkpoint","sequenceNumber":...,"subSequenceNumber":...,"error":...}: the request's
// position echoed (null where it was null) and the Java exception's simple name, or null on success.
func (w *messageWriter) checkpointAnswer(req childMessage, errorName string) []byte {
	b := append(w.buf[:0], `{"action":"checkpoint","sequenceNumber":`...)
	if req.SequenceNumber != nil {
		b = appendString(b, *req.SequenceNumber)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"subSequenceNumber":`...)
	if req.SubSequenceNumber != nil {
		b = strconv.AppendInt(b, *req.SubSequenceNumber, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"error":`...)
	if errorName != "" {
		b = appendString(b, errorName)
	} else {
		b = append(b, "null"...)
	}
	return w.end(b)
}

// end closes the object and the line, and keeps the buffer for the next message.
func (w *messageWriter) end(b []byte) []byte {
	b = append(b, '}', '\n')
	w.buf = b
	return b
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
