package kpl

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Kinesis limits on one record.
const (
	// MaxRecordSize is the largest record Kinesis accepts: data plus partition key bytes.
	MaxRecordSize = 1 << 20
	// maxPartitionKeyLength is the longest partition key, in Unicode characters.
	maxPartitionKeyLength = 256
	// maxPartitionKeyBytes bounds a partition key's UTF-8 bytes (4 per character).
	maxPartitionKeyBytes = 4 * maxPartitionKeyLength
)

// Record is one user record to put.
//
// A record with a PartitionKey (or an ExplicitHashKey) goes to the shard that key maps to,
// and the records of one key keep their order (see Producer). A record with neither is
// keyless: the producer picks its shard to spread load and gives it a short shared key.
type Record struct {
	// PartitionKey is 1-256 characters, or empty for a keyless record.
	PartitionKey string
	// ExplicitHashKey, when set, is a decimal in 0..2^128-1 that chooses the shard instead of
	// the partition key's MD5 hash. A record with an ExplicitHashKey and no PartitionKey
	// gets the shard's short keyless key as partition key.
	ExplicitHashKey string
	// Data is the payload; it is copied before PutAsync returns.
	Data []byte
}

// Errors returned by PutAsync and Put, and wrapped in Result.Err; check with errors.Is.
var (
	// ErrBufferFull means the producer's buffer (Config.MaxBufferedBytes) is full:
	// the record was refused at once. Retry later or shed load.
	ErrBufferFull = errors.New("kpl: producer buffer full")
	// ErrClosed means the producer is closed (or closing): the record was refused, or, in a
	// Result, it was still unsent when Close's deadline passed.
	ErrClosed = errors.New("kpl: producer closed")
	// ErrNotStarted means PutAsync was called before Start loaded the shard map.
	ErrNotStarted = errors.New("kpl: producer not started")
	// ErrRecordTooLarge means data plus partition key exceed MaxRecordSize.
	ErrRecordTooLarge = errors.New("kpl: record larger than 1 MiB (data plus partition key)")
	// ErrRecordExpired means the record was not put within Config.RecordTTL; the
	// Result's error also wraps the last put error.
	ErrRecordExpired = errors.New("kpl: record expired before it was put")
)

// InvalidRecordError reports a record with a bad key; PutAsync returns it at once.
type InvalidRecordError struct {
	// Field is "PartitionKey" or "ExplicitHashKey".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Error implements error: the field and what is wrong with it.
func (e *InvalidRecordError) Error() string {
	return fmt.Sprintf("kpl: invalid record: %s %s", e.Field, e.Reason)
}

// validate checks r's keys and size, and returns its hash key (zero for a keyless record)
// and whether it is keyed. It allocates nothing for a valid record.
func (r *Record) validate() (h HashKey, keyed bool, err error) {
	if len(r.Data)+len(r.PartitionKey) > MaxRecordSize {
		return HashKey{}, false, ErrRecordTooLarge
	}
	if r.PartitionKey != "" {
		if len(r.PartitionKey) > maxPartitionKeyBytes || utf8.RuneCountInString(r.PartitionKey) > maxPartitionKeyLength {
			return HashKey{}, false, &InvalidRecordError{Field: "PartitionKey", Reason: "is longer than 256 characters"}
		}
		if !utf8.ValidString(r.PartitionKey) {
			return HashKey{}, false, &InvalidRecordError{Field: "PartitionKey", Reason: "is not valid UTF-8"}
		}
	}
	if r.ExplicitHashKey != "" {
		h, ok := ParseHashKey(r.ExplicitHashKey)
		if !ok {
			return HashKey{}, false, &InvalidRecordError{Field: "ExplicitHashKey", Reason: "is not a decimal integer in 0..2^128-1"}
		}
		return h, true, nil
	}
	if r.PartitionKey == "" {
		return HashKey{}, false, nil
	}
	return PartitionKeyHash(r.PartitionKey), true, nil
}
