package settings

import (
	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/s3sink"
)

// ProcessorS3 writes the records to S3 as Parquet or gzip NDJSON objects, exactly once (package s3sink).
const ProcessorS3 = "s3"

// Environment variables of the S3 sink (EnvProcessor=ProcessorS3).
const (
	// EnvS3Bucket is the bucket the objects go to. Required with ProcessorS3.
	EnvS3Bucket = "S3_BUCKET"
	// EnvS3Prefix is the key prefix of the objects, without slashes around it. Default: DefaultS3Prefix.
	EnvS3Prefix = "S3_PREFIX"
	// EnvS3Format is "parquet" or "ndjson" (gzip-compressed JSON lines). Default: parquet.
	EnvS3Format = "S3_FORMAT"
	// EnvS3MaxObjectBytes flushes an object once its records' payloads and keys reach this many bytes.
	// Default: s3sink.DefaultMaxObjectBytes (64 MiB).
	EnvS3MaxObjectBytes = "S3_MAX_OBJECT_BYTES"
	// EnvS3MaxObjectAge flushes an object this long after its first record (Go duration). Default: 1m.
	EnvS3MaxObjectAge = "S3_MAX_OBJECT_AGE"
	// EnvS3SpillDir is the writable directory objects are encoded in before their upload (the task's volume).
	// Default: the system's temporary directory.
	EnvS3SpillDir = "S3_SPILL_DIR"
	// EnvS3Endpoint overrides the S3 endpoint (local emulator; path-style addressing). Default: AWS.
	EnvS3Endpoint = "S3_ENDPOINT"
)

// DefaultS3Prefix is EnvS3Prefix's default.
const DefaultS3Prefix = "records"

// loadS3 reads the S3 sink's settings; the bucket is required with ProcessorS3.
func loadS3(p *envconfig.Parser, s *Settings) {
	s.S3 = s3sink.Config{
		Bucket:         p.String(EnvS3Bucket),
		Prefix:         p.String(EnvS3Prefix),
		Format:         s3sink.Format(p.Choice(EnvS3Format, string(s3sink.FormatParquet), string(s3sink.FormatParquet), string(s3sink.FormatNDJSON))),
		MaxObjectBytes: int64(p.Int(EnvS3MaxObjectBytes, s3sink.DefaultMaxObjectBytes, 1, s3sink.MaxObjectBytesLimit)),
		MaxObjectAge:   p.Duration(EnvS3MaxObjectAge, s3sink.DefaultMaxObjectAge),
		SpillDir:       p.String(EnvS3SpillDir),
	}
	if s.S3.Prefix == "" {
		s.S3.Prefix = DefaultS3Prefix
	}
	if s.S3.Prefix[0] == '/' || s.S3.Prefix[len(s.S3.Prefix)-1] == '/' {
		p.Invalid(EnvS3Prefix, "want a key prefix without a leading or trailing slash")
	}
	s.S3Endpoint = p.URL(EnvS3Endpoint)
	if s.Processor == ProcessorS3 && s.S3.Bucket == "" {
		p.Invalid(EnvS3Bucket, "required with "+EnvProcessor+"="+ProcessorS3+": the bucket the objects go to")
	}
}
