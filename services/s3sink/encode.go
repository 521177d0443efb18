package s3sink

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/streamproc/streamproc/services/kcl"
)

// Row is one record as an object holds it: the Parquet schema's columns (Athena types: string, string, bigint,
// string, timestamp, binary) and an NDJSON line's fields (where data is base64 and the timestamp RFC 3339 in UTC,
// to the millisecond).
type Row struct {
	ShardID                     string    `parquet:"shard_id,dict" json:"shard_id"`
	SequenceNumber              string    `parquet:"sequence_number" json:"sequence_number"`
	SubSequenceNumber           int64     `parquet:"sub_sequence_number" json:"sub_sequence_number"`
	PartitionKey                string    `parquet:"partition_key" json:"partition_key"`
	ApproximateArrivalTimestamp time.Time `parquet:"approximate_arrival_timestamp,timestamp(millisecond)" json:"approximate_arrival_timestamp"`
	Data                        []byte    `parquet:"data" json:"data"`
}

// encoder writes the records of one object, in order, to its spill file.
type encoder interface {
	// write appends records; it keeps no reference to them.
	write(records []kcl.Record) error
	// finish completes the object (Parquet footer, gzip trailer) and flushes it to the file.
	finish() error
}

// parquetCodec compresses Parquet pages. One for all objects: its pooled encoders (each with a window of a few
// MiB) serve the pages being compressed at one time, instead of each open object keeping its own.
var parquetCodec = &zstd.Codec{Level: zstd.SpeedFastest}

// newEncoder returns f's encoder writing to w; Parquet pages are buffered in files of pageDir, so memory stays
// bounded by the page size, not the object's.
func newEncoder(f Format, w io.Writer, pageDir string) encoder {
	if f == FormatNDJSON {
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // the level is valid
		return &ndjsonEncoder{gz: gz, w: bufio.NewWriterSize(gz, 64<<10)}
	}
	return &parquetEncoder{w: parquet.NewGenericWriter[Row](w,
		parquet.Compression(parquetCodec),
		parquet.ColumnPageBuffers(parquet.NewFileBufferPool(pageDir, "pages-*")),
		parquet.CreatedBy("streamproc s3sink", "1", ""),
	)}
}

// parquetEncoder writes one row group per object: all of an object's rows go in one Write call per batch.
type parquetEncoder struct {
	w    *parquet.GenericWriter[Row]
	rows []Row
}

func (e *parquetEncoder) write(records []kcl.Record) error {
	e.rows = e.rows[:0]
	for i := range records {
		r := &records[i]
		e.rows = append(e.rows, Row{ShardID: r.ShardID, SequenceNumber: r.SequenceNumber,
			SubSequenceNumber: r.SubSequenceNumber, PartitionKey: r.PartitionKey,
			ApproximateArrivalTimestamp: r.ApproximateArrivalTimestamp, Data: r.Data})
	}
	_, err := e.w.Write(e.rows)
	clear(e.rows) // the payloads belong to the worker's batch
	if err != nil {
		return fmt.Errorf("write parquet rows: %w", err)
	}
	return nil
}

func (e *parquetEncoder) finish() error {
	if err := e.w.Close(); err != nil {
		return fmt.Errorf("finish parquet file: %w", err)
	}
	return nil
}

// ndjsonEncoder writes one JSON object a line into a gzip stream.
type ndjsonEncoder struct {
	gz   *gzip.Writer
	w    *bufio.Writer
	line []byte
}

func (e *ndjsonEncoder) write(records []kcl.Record) error {
	for i := range records {
		e.line = appendJSONLine(e.line[:0], &records[i])
		if _, err := e.w.Write(e.line); err != nil {
			return fmt.Errorf("write json line: %w", err)
		}
	}
	return nil
}

func (e *ndjsonEncoder) finish() error {
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("finish json lines: %w", err)
	}
	if err := e.gz.Close(); err != nil {
		return fmt.Errorf("finish gzip stream: %w", err)
	}
	return nil
}

// appendJSONLine appends r as one JSON object and a newline, the fields in Row's order.
func appendJSONLine(b []byte, r *kcl.Record) []byte {
	b = append(b, `{"shard_id":`...)
	b = appendJSONString(b, r.ShardID)
	b = append(b, `,"sequence_number":"`...)
	b = append(b, r.SequenceNumber...)
	b = append(b, `","sub_sequence_number":`...)
	b = strconv.AppendInt(b, r.SubSequenceNumber, 10)
	b = append(b, `,"partition_key":`...)
	b = appendJSONString(b, r.PartitionKey)
	b = append(b, `,"approximate_arrival_timestamp":"`...)
	b = r.ApproximateArrivalTimestamp.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, `","data":"`...)
	b = base64.StdEncoding.AppendEncode(b, r.Data)
	return append(b, "\"}\n"...)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and control characters escaped, invalid UTF-8
// replaced by U+FFFD (as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}
