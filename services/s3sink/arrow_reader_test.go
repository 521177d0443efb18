package s3sink

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// This file reads the sink's Parquet objects with Apache Arrow's Go implementation, which shares no code with the
// writer (parquet-go): what Athena and Spark read must not depend on one library's reading of its own output.

// arrowColumns reads every column of a Parquet file with arrow-go: byte array columns as strings, int64 columns as
// int64, by column name. It checks the schema and the compression on the way.
func arrowColumns(t *testing.T, b []byte) (strs map[string][]string, ints map[string][]int64) {
	t.Helper()
	r, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("arrow-go cannot open the file: %v", err)
	}
	defer r.Close()
	sc := r.MetaData().Schema
	checkArrowSchema(t, sc)
	strs, ints = map[string][]string{}, map[string][]int64{}
	for g := range r.NumRowGroups() {
		rg := r.RowGroup(g)
		for c := range sc.NumColumns() {
			meta, err := rg.MetaData().ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			if meta.Compression() != compress.Codecs.Zstd {
				t.Errorf("column %s is compressed with %v, want zstd", sc.Column(c).Name(), meta.Compression())
			}
			reader, err := rg.Column(c)
			if err != nil {
				t.Fatal(err)
			}
			n := rg.NumRows()
			name := sc.Column(c).Name()
			switch reader := reader.(type) {
			case *file.ByteArrayColumnChunkReader:
				values := make([]parquet.ByteArray, n)
				readAll(t, name, n, func() (int64, int, error) { return reader.ReadBatch(n, values, nil, nil) })
				for _, v := range values {
					strs[name] = append(strs[name], string(v))
				}
			case *file.Int64ColumnChunkReader:
				values := make([]int64, n)
				readAll(t, name, n, func() (int64, int, error) { return reader.ReadBatch(n, values, nil, nil) })
				ints[name] = append(ints[name], values...)
			default:
				t.Fatalf("column %s: unexpected reader %T", name, reader)
			}
		}
	}
	return strs, ints
}

func readAll(t *testing.T, column string, n int64, read func() (int64, int, error)) {
	t.Helper()
	if _, got, err := read(); err != nil || int64(got) != n {
		t.Fatalf("column %s: read %d of %d values: %v", column, got, n, err)
	}
}

// checkArrowSchema fails t unless the file has the six columns, required, with the types Athena's table declares.
func checkArrowSchema(t *testing.T, sc *schema.Schema) {
	t.Helper()
	want := []struct {
		name     string
		physical parquet.Type
		logical  string
	}{
		{"shard_id", parquet.Types.ByteArray, "String"},
		{"sequence_number", parquet.Types.ByteArray, "String"},
		{"sub_sequence_number", parquet.Types.Int64, "Int(bitWidth=64, isSigned=true)"},
		{"partition_key", parquet.Types.ByteArray, "String"},
		{"approximate_arrival_timestamp", parquet.Types.Int64, "Timestamp(isAdjustedToUTC=true, timeUnit=milliseconds, is_from_converted_type=false, force_set_converted_type=false)"},
		{"data", parquet.Types.ByteArray, "None"},
	}
	if sc.NumColumns() != len(want) {
		t.Fatalf("%d columns, want %d", sc.NumColumns(), len(want))
	}
	for i, w := range want {
		c := sc.Column(i)
		if c.Name() != w.name || c.PhysicalType() != w.physical || fmt.Sprint(c.LogicalType()) != w.logical ||
			c.MaxDefinitionLevel() != 0 {
			t.Errorf("column %d: %s %v %v (max definition level %d), want required %s %v %s", i, c.Name(),
				c.PhysicalType(), c.LogicalType(), c.MaxDefinitionLevel(), w.name, w.physical, w.logical)
		}
	}
}

func TestParquetReadWithArrow(t *testing.T) {
	// GIVEN a Parquet object of records with every kind of value
	records := sampleRecords()
	want := wantRows(records)
	b := encodeObject(t, FormatParquet, records)
	// WHEN arrow-go reads its columns
	strs, ints := arrowColumns(t, b)
	// THEN every column holds every record's value, in order
	for i, w := range want {
		got := Row{ShardID: strs["shard_id"][i], SequenceNumber: strs["sequence_number"][i],
			SubSequenceNumber: ints["sub_sequence_number"][i], PartitionKey: strs["partition_key"][i],
			ApproximateArrivalTimestamp: time.UnixMilli(ints["approximate_arrival_timestamp"][i]).UTC(),
			Data:                        []byte(strs["data"][i])}
		checkRow(t, i, got, w)
	}
}
