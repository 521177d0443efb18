package s3sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/streamproc/streamproc/services/telemetry"
)

// contentTypes are the objects' Content-Type by format.
var contentTypes = map[Format]string{FormatParquet: "application/vnd.apache.parquet", FormatNDJSON: "application/gzip"}

// upload puts the sealed batch, retrying failures with backoff. When an object is at its key already, it is
// adopted instead (adopt). On success the object's last record becomes the checkpoint due.
func (p *Processor) upload(ctx context.Context) error {
	b := p.batch
	start := time.Now()
	err := p.retry(ctx, "upload "+b.key, func(ctx context.Context) error { return p.put(ctx, b) }, isPreconditionFailed)
	switch {
	case err == nil:
		p.written(b, start)
		last := b.last
		p.checkpointDue = &last
		p.dropBatch()
		return nil
	case isPreconditionFailed(err):
		return p.adopt(ctx, b)
	default:
		return err
	}
}

// put uploads the sealed batch once, on the condition that no object is at its key (If-None-Match: *).
func (p *Processor) put(ctx context.Context, b *batch) error {
	size, err := b.size()
	if err != nil {
		return err
	}
	_, err = p.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &p.cfg.Bucket,
		Key:           &b.key,
		Body:          io.NewSectionReader(b.file, 0, size),
		ContentLength: &size,
		ContentType:   aws.String(contentTypes[p.cfg.Format]),
		IfNoneMatch:   aws.String("*"),
		Metadata:      metadataOf(b.first, b.last, b.records),
	})
	return err
}

// written counts an object that landed.
func (p *Processor) written(b *batch, start time.Time) {
	size, _ := b.size()
	m := p.cfg.Metrics
	m.Add(MetricObjectsWritten, telemetry.UnitCount, 1)
	m.Add(MetricBytesWritten, telemetry.UnitBytes, float64(size))
	m.Add(MetricRecordsWritten, telemetry.UnitCount, float64(b.records))
	m.Add(MetricFlushReason, telemetry.UnitCount, 1, telemetry.Dimension{Name: DimensionFlushReason, Value: b.reason})
	m.Observe(MetricUploadLatency, telemetry.UnitMilliseconds, float64(time.Since(start).Microseconds())/1000)
	p.log.Debug("object written", "key", b.key, "records", b.records, "bytes", size, "reason", b.reason)
}

// adopt handles an upload refused because an object is at the batch's key: the previous owner of the shard (or an
// earlier attempt of this upload) wrote it first. Its metadata names its last record E, and the batch (first F,
// last L, from F like the object) is dropped:
//   - E = L: the same records; E is checkpointed.
//   - E < L: E is checkpointed, then the processor restarts from it: the records after E are in the dropped
//     batch only, and the stream gives them again.
//   - E > L: the records up to E are skipped as they come, then E is checkpointed.
func (p *Processor) adopt(ctx context.Context, b *batch) error {
	last, found, err := p.existingObject(ctx, b.key)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("upload %s: refused because the key exists, yet no object is there", b.key)
	}
	if last.compare(b.first) < 0 {
		return fmt.Errorf("object %s ends at %s, before its first record %s", b.key, last, b.first)
	}
	p.dropBatch()
	p.cfg.Metrics.Add(MetricObjectsAdopted, telemetry.UnitCount, 1)
	p.log.Info("adopting the object found at this key", "key", b.key, "last", last.String(), "encoded_last", b.last.String())
	switch last.compare(b.last) {
	case 0:
		p.checkpointDue = &last
	case -1:
		p.checkpointDue, p.restartDue = &last, true
	default:
		p.adopted = &last
	}
	return nil
}

// existingObject reads the last record of the object at key from its metadata; found is false when there is none.
func (p *Processor) existingObject(ctx context.Context, key string) (last position, found bool, err error) {
	var out *s3.HeadObjectOutput
	err = p.retry(ctx, "head "+key, func(ctx context.Context) error {
		var err error
		out, err = p.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &p.cfg.Bucket, Key: &key})
		return err
	}, isNotFound)
	switch {
	case isNotFound(err):
		return position{}, false, nil
	case err != nil:
		return position{}, false, err
	}
	last, err = lastPositionOf(out.Metadata)
	if err != nil {
		return position{}, false, fmt.Errorf("object %s: %w", key, err)
	}
	return last, true, nil
}

// retry calls fn, each attempt bounded by Config.UploadTimeout, until it succeeds or fails with an error final
// says is an answer, not a failure; it gives up after Config.UploadAttempts attempts or when ctx ends.
func (p *Processor) retry(ctx context.Context, what string, fn func(context.Context) error, final func(error) bool) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.UploadTimeout)
		err := fn(actx)
		cancel()
		if err == nil || final(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		p.cfg.Metrics.Add(MetricUploadErrors, telemetry.UnitCount, 1)
		if attempt >= p.cfg.UploadAttempts {
			return fmt.Errorf("%s: failed %d times: %w", what, attempt, err)
		}
		p.log.Warn("S3 call failed; retrying", "call", what, "attempt", attempt, telemetry.LogKeyError, err.Error())
		pause := p.backoff(attempt)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// backoff is the pause after the n-th failed attempt in a row: drawn from [d/2, d], where d is RetryBackoff
// doubled n-1 times and at most MaxRetryBackoff.
func (p *Processor) backoff(n int) time.Duration {
	d := p.cfg.MaxRetryBackoff
	if doublings := n - 1; doublings < 32 && p.cfg.RetryBackoff <= d>>doublings {
		d = p.cfg.RetryBackoff << doublings
	}
	return d/2 + rand.N(d/2+1)
}

// isPreconditionFailed tells whether S3 refused a conditional write because an object is at the key (412).
func isPreconditionFailed(err error) bool { return httpStatus(err) == http.StatusPreconditionFailed }

// isNotFound tells whether S3 answered that no object is at the key (404).
func isNotFound(err error) bool { return httpStatus(err) == http.StatusNotFound }

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
