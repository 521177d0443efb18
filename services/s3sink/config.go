package s3sink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/services/telemetry"
)

// Format is the encoding of the objects.
type Format string

const (
	// FormatParquet writes Parquet files (zstd-compressed columns), named .parquet.
	FormatParquet Format = "parquet"
	// FormatNDJSON writes gzip-compressed JSON lines, one record a line, named .json.gz.
	FormatNDJSON Format = "ndjson"
)

// Extension is the file name extension of the format's objects, with its dot.
func (f Format) Extension() string {
	if f == FormatNDJSON {
		return ".json.gz"
	}
	return ".parquet"
}

// Defaults of Config.
const (
	// DefaultMaxObjectBytes is how much input (record payload and partition key bytes) an object holds at most
	// before it is flushed; the record that reaches it is the object's last.
	DefaultMaxObjectBytes = 64 << 20
	// DefaultMaxObjectAge is how long an object stays open after its first record before it is flushed.
	DefaultMaxObjectAge = time.Minute
	// DefaultUploadAttempts is how many times an upload (or the read of an existing object's metadata) is tried
	// before the call fails and the worker retries it.
	DefaultUploadAttempts = 5
	// DefaultUploadTimeout bounds one attempt of an upload.
	DefaultUploadTimeout = 2 * time.Minute
	// DefaultRetryBackoff is the first pause between attempts; it doubles up to DefaultMaxRetryBackoff.
	DefaultRetryBackoff = 200 * time.Millisecond
	// DefaultMaxRetryBackoff caps the pause between attempts.
	DefaultMaxRetryBackoff = 10 * time.Second
	// DefaultLeaseLostUploadTimeout bounds the single upload of the open object when the lease is lost.
	DefaultLeaseLostUploadTimeout = 10 * time.Second
	// MaxObjectBytesLimit is the largest MaxObjectBytes: its objects stay far below PutObject's 5 GiB even when
	// the encoding grows the input (base64 in NDJSON, incompressible payloads).
	MaxObjectBytesLimit = 1 << 30
)

// Metric names the sink emits (EMF, through Config.Metrics). The dashboard uses these constants.
const (
	// MetricObjectsWritten counts objects this sink uploaded.
	MetricObjectsWritten = "ObjectsWritten"
	// MetricBytesWritten counts the bytes of those objects (encoded and compressed).
	MetricBytesWritten = "BytesWritten"
	// MetricRecordsWritten counts the records in those objects.
	MetricRecordsWritten = "RecordsWritten"
	// MetricUploadLatency observes how long each successful upload took, in milliseconds.
	MetricUploadLatency = "UploadLatency"
	// MetricFlushReason counts objects written, with the dimension DimensionFlushReason saying why each was
	// flushed (one of the Flush... values).
	MetricFlushReason = "FlushReason"
	// MetricObjectsAdopted counts objects another worker (or an earlier attempt) had written at the key this sink
	// was about to write, which it adopted instead of writing a second copy.
	MetricObjectsAdopted = "ObjectsAdopted"
	// MetricUploadErrors counts failed S3 calls (each is retried; none checkpoints or skips).
	MetricUploadErrors = "UploadErrors"
	// MetricRecordsOutsideShardRangeDropped counts KPL user records dropped because they lie outside their
	// shard's hash key range (see Config.KeepRecordsOutsideShardRange).
	MetricRecordsOutsideShardRangeDropped = "RecordsOutsideShardRangeDropped"
	// DimensionFlushReason is the dimension of MetricFlushReason.
	DimensionFlushReason = "Reason"
)

// Reasons an object is flushed: the values of DimensionFlushReason.
const (
	FlushSize      = "size"
	FlushAge       = "age"
	FlushShardEnd  = "shard_end"
	FlushShutdown  = "shutdown"
	FlushLeaseLost = "lease_lost"
)

// Object metadata (x-amz-meta-...) the sink writes on every object. The last record's position is what a worker
// that finds the object adopts.
const (
	MetadataFirstSequenceNumber    = "first-sequence-number"
	MetadataFirstSubSequenceNumber = "first-sub-sequence-number"
	MetadataLastSequenceNumber     = "last-sequence-number"
	MetadataLastSubSequenceNumber  = "last-sub-sequence-number"
	MetadataRecords                = "records"
)

// S3API is the part of the S3 client the sink calls: PutObject (conditional, If-None-Match: *) and HeadObject (the
// metadata of an object found at its key). IAM: s3:PutObject and s3:GetObject on the prefix.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

// Config configures the sink's processors. The zero value of every optional field means its documented default.
type Config struct {
	// Bucket is the S3 bucket the objects go to. Required.
	Bucket string
	// Prefix is the key prefix of every object, without a trailing slash: objects are named
	// <Prefix>/dt=YYYY-MM-DD/hr=HH/<shardId>-<sequenceNumber>-<subSequenceNumber><extension>. Default: none (the
	// keys start at dt=).
	Prefix string
	// Format is the objects' encoding. Default: FormatParquet.
	Format Format
	// MaxObjectBytes flushes an object once its records' payload and partition key bytes reach it (a record
	// larger than it is an object of its own). Default: DefaultMaxObjectBytes; at most MaxObjectBytesLimit.
	MaxObjectBytes int64
	// MaxObjectAge flushes an object this long after its first record was added, on the next batch the worker
	// delivers (set kcl.Config.ProcessEmptyBatches, so that idle shards flush too). Default: DefaultMaxObjectAge.
	MaxObjectAge time.Duration
	// SpillDir is the writable directory where objects are encoded before they are uploaded (a task's volume: the
	// container's root file system is read-only). Default: os.TempDir().
	SpillDir string
	// UploadAttempts is how many times an upload, or the read of an existing object's metadata, is tried before
	// the call fails; the worker then retries it (kcl.Config.MaxProcessAttempts). Default: DefaultUploadAttempts.
	UploadAttempts int
	// UploadTimeout bounds each attempt. Default: DefaultUploadTimeout.
	UploadTimeout time.Duration
	// RetryBackoff is the pause after the first failed attempt; it doubles after each, up to MaxRetryBackoff, with
	// jitter. Default: DefaultRetryBackoff.
	RetryBackoff time.Duration
	// MaxRetryBackoff caps the pause between attempts. Default: DefaultMaxRetryBackoff.
	MaxRetryBackoff time.Duration
	// LeaseLostUploadTimeout bounds the one upload of the open object when the lease is lost (the successor
	// adopts it if it lands). Default: DefaultLeaseLostUploadTimeout.
	LeaseLostUploadTimeout time.Duration
	// KeepRecordsOutsideShardRange writes the KPL user records whose hash key lies outside the shard they were read
	// from (kcl.Record.OutsideShardRange). By default they are dropped, as the Java KCL drops them: this project's
	// KPL (package kpl), finding an aggregate stored in another shard than it predicted, puts those records again
	// to the right shard and acknowledges them only then, so keeping both copies would land them twice. Set it for
	// producers that do not put them again. Default: false.
	KeepRecordsOutsideShardRange bool
	// Logger receives the sink's logs. Default: slog.Default().
	Logger *slog.Logger
	// Metrics receives the metrics named Metric... (a *telemetry.Metrics writes them as EMF). Default: none.
	Metrics telemetry.Recorder
}

// withDefaults validates cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Bucket == "" {
		return cfg, errors.New("s3sink: Bucket is required")
	}
	if strings.HasPrefix(cfg.Prefix, "/") || strings.HasSuffix(cfg.Prefix, "/") {
		return cfg, fmt.Errorf("s3sink: Prefix %q: want no leading or trailing slash", cfg.Prefix)
	}
	cfg.Format = cmp.Or(cfg.Format, FormatParquet)
	if cfg.Format != FormatParquet && cfg.Format != FormatNDJSON {
		return cfg, fmt.Errorf("s3sink: Format %q: want %q or %q", cfg.Format, FormatParquet, FormatNDJSON)
	}
	if cfg.MaxObjectBytes < 0 || cfg.MaxObjectBytes > MaxObjectBytesLimit {
		return cfg, fmt.Errorf("s3sink: MaxObjectBytes %d: want 1-%d (or 0 for the default)", cfg.MaxObjectBytes, MaxObjectBytesLimit)
	}
	cfg.MaxObjectBytes = cmp.Or(cfg.MaxObjectBytes, DefaultMaxObjectBytes)
	if cfg.UploadAttempts < 0 {
		return cfg, fmt.Errorf("s3sink: UploadAttempts %d: want >= 1 (or 0 for the default)", cfg.UploadAttempts)
	}
	cfg.UploadAttempts = cmp.Or(cfg.UploadAttempts, DefaultUploadAttempts)
	for name, d := range map[string]struct {
		v   *time.Duration
		def time.Duration
	}{
		"MaxObjectAge":           {&cfg.MaxObjectAge, DefaultMaxObjectAge},
		"UploadTimeout":          {&cfg.UploadTimeout, DefaultUploadTimeout},
		"RetryBackoff":           {&cfg.RetryBackoff, DefaultRetryBackoff},
		"MaxRetryBackoff":        {&cfg.MaxRetryBackoff, DefaultMaxRetryBackoff},
		"LeaseLostUploadTimeout": {&cfg.LeaseLostUploadTimeout, DefaultLeaseLostUploadTimeout},
	} {
		if *d.v < 0 {
			return cfg, fmt.Errorf("s3sink: %s %v: want > 0 (or 0 for the default %v)", name, *d.v, d.def)
		}
		*d.v = cmp.Or(*d.v, d.def)
	}
	cfg.SpillDir = cmp.Or(cfg.SpillDir, os.TempDir())
	if err := checkWritable(cfg.SpillDir); err != nil {
		return cfg, err
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.Metrics = cmp.Or(cfg.Metrics, telemetry.Discard)
	return cfg, nil
}

// checkWritable fails when dir cannot hold spill files, so a misconfigured volume stops the consumer at start
// instead of failing every upload.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, "s3sink-check-*")
	if err != nil {
		return fmt.Errorf("s3sink: SpillDir %q is not writable: %w", dir, err)
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		return fmt.Errorf("s3sink: SpillDir %q: %w", dir, err)
	}
	return os.Remove(name)
}
