// Command lakecat prints what the S3 sink landed: every record of every object under a prefix as one JSON line
// (shard_id, sequence_number, sub_sequence_number, partition_key, approximate_arrival_timestamp, data: the payload
// as text when it is UTF-8, else data_base64), objects in key order; or, with -list, one line per object with its
// record count and its first and last records. It reads Parquet and gzip NDJSON objects alike.
//
//	go run ./services/s3sink/cmd/lakecat -endpoint http://127.0.0.1:PORT -bucket local-lake   (make local's lake)
//	go run ./services/s3sink/cmd/lakecat -bucket <LakeBucketName output> -prefix records/dt=2025-07-01 -list
//
// Without -endpoint it reads AWS with the usual credentials and region.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/s3sink"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	endpoint := flag.String("endpoint", "", "an S3 emulator's URL (path-style addressing, dummy credentials); empty: AWS")
	bucket := flag.String("bucket", "", "the lake's bucket (required)")
	prefix := flag.String("prefix", "records/", "only the objects whose keys start with this")
	list := flag.Bool("list", false, "one line per object (key, records, first and last record) instead of the records")
	flag.Parse()
	if *bucket == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	client, err := newClient(ctx, *endpoint)
	if err == nil {
		err = run(ctx, client, *bucket, *prefix, *list, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lakecat:", err)
		os.Exit(1)
	}
}

// newClient returns an S3 client for AWS, or for the emulator at endpoint.
func newClient(ctx context.Context, endpoint string) (*s3.Client, error) {
	if endpoint != "" {
		return emulator.NewS3Client(emulator.LocalConfig(), endpoint), nil
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	return s3.NewFromConfig(cfg), nil
}

// recordLine is one record printed.
type recordLine struct {
	Key                         string    `json:"key"`
	ShardID                     string    `json:"shard_id"`
	SequenceNumber              string    `json:"sequence_number"`
	SubSequenceNumber           int64     `json:"sub_sequence_number"`
	PartitionKey                string    `json:"partition_key"`
	ApproximateArrivalTimestamp time.Time `json:"approximate_arrival_timestamp"`
	Data                        *string   `json:"data,omitempty"`
	DataBase64                  []byte    `json:"data_base64,omitempty"`
}

// objectLine is one object listed.
type objectLine struct {
	Key     string `json:"key"`
	Bytes   int64  `json:"bytes"`
	Records int    `json:"records"`
	First   string `json:"first"`
	Last    string `json:"last"`
}

// run prints the objects under prefix, or their records.
func run(ctx context.Context, client *s3.Client, bucket, prefix string, list bool, out io.Writer) error {
	enc := json.NewEncoder(out)
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if _, ok := s3sink.FormatOfKey(key); !ok {
				continue // not a sink object (Athena results, ...)
			}
			obj, err := s3sink.ReadObject(ctx, client, bucket, key)
			if err != nil {
				return err
			}
			if err := print(enc, key, obj.Size, obj.Rows, list); err != nil {
				return err
			}
		}
	}
	return nil
}

// print writes the object's line, or its records' lines.
func print(enc *json.Encoder, key string, size int64, rows []s3sink.Row, list bool) error {
	if list {
		if len(rows) == 0 {
			return enc.Encode(objectLine{Key: key, Bytes: size})
		}
		f, l := rows[0], rows[len(rows)-1]
		return enc.Encode(objectLine{Key: key, Bytes: size, Records: len(rows),
			First: fmt.Sprintf("%s/%d", f.SequenceNumber, f.SubSequenceNumber), Last: fmt.Sprintf("%s/%d", l.SequenceNumber, l.SubSequenceNumber)})
	}
	for _, r := range rows {
		line := recordLine{Key: key, ShardID: r.ShardID, SequenceNumber: r.SequenceNumber, SubSequenceNumber: r.SubSequenceNumber,
			PartitionKey: r.PartitionKey, ApproximateArrivalTimestamp: r.ApproximateArrivalTimestamp.UTC()}
		if utf8.Valid(r.Data) {
			s := string(r.Data)
			line.Data = &s
		} else {
			line.DataBase64 = r.Data
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil
}
