package s3sink

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/streamproc/streamproc/services/kcl"
)

// batch is one object being built: its records are encoded into a spill file as they come, and the file is
// uploaded whole once the batch is sealed.
type batch struct {
	key         string
	first, last position
	records     int
	inputBytes  int64
	opened      time.Time
	// reason is why the batch was sealed (a Flush... value); empty while records may still be added.
	reason string
	file   *os.File
	enc    encoder
}

// openBatch starts the object whose first record is first, with its spill file in dir.
func openBatch(cfg *Config, dir string, first *kcl.Record, now time.Time) (*batch, error) {
	f, err := os.CreateTemp(dir, "object-*")
	if err != nil {
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	return &batch{key: ObjectKey(cfg.Prefix, cfg.Format, first), first: positionOf(first), opened: now, file: f,
		enc: newEncoder(cfg.Format, f, dir)}, nil
}

// recordSize is what a record counts towards MaxObjectBytes.
func recordSize(r *kcl.Record) int64 { return int64(len(r.Data) + len(r.PartitionKey)) }

// add encodes the records that fit before the batch reaches maxBytes (at least one) and returns how many it took;
// full tells whether the batch reached maxBytes.
func (b *batch) add(records []kcl.Record, maxBytes int64) (n int, full bool, err error) {
	size := b.inputBytes
	for n < len(records) && size < maxBytes {
		size += recordSize(&records[n])
		n++
	}
	if err := b.enc.write(records[:n]); err != nil {
		return 0, false, err
	}
	b.inputBytes = size
	b.records += n
	b.last = positionOf(&records[n-1])
	return n, size >= maxBytes, nil
}

// seal completes the object for upload, flushed for reason. Sealing a sealed batch changes nothing.
func (b *batch) seal(reason string) error {
	if b.reason != "" {
		return nil
	}
	if err := b.enc.finish(); err != nil {
		return err
	}
	b.reason = reason
	return nil
}

// size is the sealed object's size in bytes.
func (b *batch) size() (int64, error) {
	st, err := b.file.Stat()
	if err != nil {
		return 0, fmt.Errorf("spill file: %w", err)
	}
	return st.Size(), nil
}

// discard removes the spill file.
func (b *batch) discard() error {
	return errors.Join(b.file.Close(), os.Remove(b.file.Name()))
}
