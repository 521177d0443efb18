package s3sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/parquet-go/parquet-go"
)

// FormatOfKey returns the format of an object the sink wrote, from its key's extension.
func FormatOfKey(key string) (Format, bool) {
	for _, f := range []Format{FormatParquet, FormatNDJSON} {
		if strings.HasSuffix(key, f.Extension()) {
			return f, true
		}
	}
	return "", false
}

// ReadRows decodes an object the sink wrote in format f: the records in the order they were written. Verification
// (the load generator, tests) and users' tools read objects with it.
func ReadRows(r io.ReaderAt, size int64, f Format) ([]Row, error) {
	if f == FormatNDJSON {
		return readNDJSON(io.NewSectionReader(r, 0, size))
	}
	file, err := parquet.OpenFile(r, size)
	if err != nil {
		return nil, fmt.Errorf("open parquet file: %w", err)
	}
	rows := make([]Row, 0, file.NumRows())
	reader := parquet.NewGenericReader[Row](file)
	defer reader.Close()
	for {
		buf := make([]Row, 256) // fresh each time: a reader may reuse the byte slices of the rows it is given
		n, err := reader.Read(buf)
		rows = append(rows, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read parquet rows: %w", err)
		}
	}
}

// readNDJSON decodes a gzip stream of JSON lines.
func readNDJSON(r io.Reader) ([]Row, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("open gzip stream: %w", err)
	}
	defer gz.Close()
	var rows []Row
	dec := json.NewDecoder(bufio.NewReader(gz))
	for {
		var row Row
		err := dec.Decode(&row)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode json line %d: %w", len(rows)+1, err)
		}
		rows = append(rows, row)
	}
}

// ObjectGetter is the part of the S3 client ReadObject calls.
type ObjectGetter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Object is an object the sink wrote, read back.
type Object struct {
	// Key is the object's key; Size its size in bytes.
	Key  string
	Size int64
	// Metadata is its user metadata (Metadata... keys).
	Metadata map[string]string
	// Rows are its records, in order.
	Rows []Row
}

// ReadObject gets the object at key and decodes it in the format its name says.
func ReadObject(ctx context.Context, client ObjectGetter, bucket, key string) (Object, error) {
	f, ok := FormatOfKey(key)
	if !ok {
		return Object{}, fmt.Errorf("object %s: not named like a sink object (%s or %s)", key, FormatParquet.Extension(), FormatNDJSON.Extension())
	}
	got, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	defer got.Body.Close()
	body, err := io.ReadAll(got.Body)
	if err != nil {
		return Object{}, fmt.Errorf("read %s: %w", key, err)
	}
	rows, err := ReadRows(bytes.NewReader(body), int64(len(body)), f)
	if err != nil {
		return Object{}, fmt.Errorf("object %s is not a complete %s file: %w", key, f, err)
	}
	return Object{Key: key, Size: int64(len(body)), Metadata: got.Metadata, Rows: rows}, nil
}
