package s3sink

import (
	"context"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/services/kcl"
)

const testShard = "shardId-000000000007"

// sinkEnv is a bucket on moto behind a fault-injecting transport, and the processors of one test.
type sinkEnv struct {
	t       *testing.T
	client  *s3.Client
	faults  *faultTransport
	bucket  string
	metrics *countingRecorder
}

func newSinkEnv(t *testing.T) *sinkEnv {
	t.Helper()
	faults := newFaultTransport()
	// No SDK retries: each injected fault reaches the sink, whose own retries are under test.
	client := emulators.Get(t).S3Client(func(o *s3.Options) {
		o.HTTPClient = &http.Client{Transport: faults}
		o.RetryMaxAttempts = 1
	})
	return &sinkEnv{t: t, client: client, faults: faults, bucket: newBucket(t, client), metrics: &countingRecorder{}}
}

// processor returns an initialized processor of testShard with cfg (bucket, prefix and test settings filled in).
func (e *sinkEnv) processor(cfg Config) *Processor {
	e.t.Helper()
	return e.processorWith(cfg, e.client)
}

func (e *sinkEnv) processorWith(cfg Config, client S3API) *Processor {
	e.t.Helper()
	cfg.Bucket, cfg.Prefix, cfg.SpillDir = e.bucket, "lake", e.t.TempDir()
	cfg.Metrics, cfg.Logger = e.metrics, testLogger(e.t)
	cfg.RetryBackoff, cfg.MaxRetryBackoff = 5*time.Millisecond, 20*time.Millisecond
	newProcessor, err := NewProcessorFunc(cfg, client)
	if err != nil {
		e.t.Fatal(err)
	}
	p := newProcessor().(*Processor)
	if err := p.Initialize(e.t.Context(), kcl.InitializeInput{ShardID: testShard}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := p.Close(); err != nil {
			e.t.Errorf("close: %v", err)
		}
	})
	return p
}

func (e *sinkEnv) objects() []object { return listObjects(e.t, e.client, e.bucket) }

// process gives p one batch and fails the test on an error.
func process(t *testing.T, p *Processor, cp kcl.Checkpointer, records []kcl.Record) {
	t.Helper()
	if err := p.ProcessRecords(t.Context(), kcl.ProcessRecordsInput{Records: records, Checkpointer: cp}); err != nil {
		t.Fatalf("process records: %v", err)
	}
}

// flushCase is a way of giving a processor records and ending it, and what must come of it.
type flushCase struct {
	cfg Config
	// drive gives the records to the processor and ends it
	drive           func(t *testing.T, p *Processor, cp *fakeCheckpointer)
	wantObjects     []string
	wantCheckpoints []string
	wantReasons     map[string]float64
}

// flushCases are TestFlushes' cases.
func flushCases() map[string]flushCase {
	records := testRecords(testShard, 0, 10, 100) // 100 bytes of data and 5 of key each
	big := testRecords(testShard, 10, 1, 5000)
	threeThenShardEnd := func(t *testing.T, p *Processor, cp *fakeCheckpointer) {
		process(t, p, cp, records[:3])
		if err := p.ShardEnded(t.Context(), kcl.ShardEndedInput{Checkpointer: cp}); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]flushCase{
		"by size, then the rest at shutdown": {
			cfg: Config{MaxObjectBytes: 300},
			drive: func(t *testing.T, p *Processor, cp *fakeCheckpointer) {
				process(t, p, cp, records[:4])
				process(t, p, cp, records[4:])
				if err := p.ShutdownRequested(t.Context(), kcl.ShutdownRequestedInput{Checkpointer: cp}); err != nil {
					t.Fatal(err)
				}
			},
			wantObjects:     []string{"record-0-..record-2-", "record-3-..record-5-", "record-6-..record-8-", "record-9-..record-9-"},
			wantCheckpoints: []string{at(records, 2), at(records, 5), at(records, 8), at(records, 9)},
			wantReasons:     map[string]float64{FlushSize: 3, FlushShutdown: 1},
		},
		"a record over the object limit lands alone": {
			cfg: Config{MaxObjectBytes: 1000},
			drive: func(t *testing.T, p *Processor, cp *fakeCheckpointer) {
				process(t, p, cp, big)
				process(t, p, cp, records[:2])
				if err := p.ShutdownRequested(t.Context(), kcl.ShutdownRequestedInput{Checkpointer: cp}); err != nil {
					t.Fatal(err)
				}
			},
			wantObjects:     []string{"record-0-..record-1-", "record-10-..record-10-"},
			wantCheckpoints: []string{at(big, 0), at(records, 1)},
			wantReasons:     map[string]float64{FlushSize: 1, FlushShutdown: 1},
		},
		"by age, on an empty batch": {
			cfg: Config{MaxObjectAge: time.Minute},
			drive: func(t *testing.T, p *Processor, cp *fakeCheckpointer) {
				now := time.Now()
				p.now = func() time.Time { return now }
				process(t, p, cp, records[:3])
				now = now.Add(59 * time.Second)
				process(t, p, cp, nil)
				if len(cp.all()) != 0 {
					t.Fatalf("flushed before the age: %v", cp.all())
				}
				now = now.Add(time.Second)
				process(t, p, cp, nil)
			},
			wantObjects:     []string{"record-0-..record-2-"},
			wantCheckpoints: []string{at(records, 2)},
			wantReasons:     map[string]float64{FlushAge: 1},
		},
		"at shard end, then the end is checkpointed": {
			drive:           threeThenShardEnd,
			wantObjects:     []string{"record-0-..record-2-"},
			wantCheckpoints: []string{at(records, 2), kcl.CheckpointShardEnd},
			wantReasons:     map[string]float64{FlushShardEnd: 1},
		},
		"a shard that ends with nothing open only checkpoints its end": {
			cfg:             Config{MaxObjectBytes: 300},
			drive:           threeThenShardEnd,
			wantObjects:     []string{"record-0-..record-2-"},
			wantCheckpoints: []string{at(records, 2), kcl.CheckpointShardEnd},
			wantReasons:     map[string]float64{FlushSize: 1},
		},
		"at lease loss, uploaded without a checkpoint": {
			drive: func(t *testing.T, p *Processor, cp *fakeCheckpointer) {
				process(t, p, cp, records[:3])
				p.LeaseLost(t.Context())
			},
			wantObjects: []string{"record-0-..record-2-"},
			wantReasons: map[string]float64{FlushLeaseLost: 1},
		},
	}
}

func TestFlushes(t *testing.T) {
	tests := flushCases()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN a processor
			env := newSinkEnv(t)
			p := env.processor(tc.cfg)
			cp := &fakeCheckpointer{}
			// WHEN it is given records and ended
			tc.drive(t, p, cp)
			// THEN the objects hold the records, each object checkpointed at its last record, for the reasons
			objects := env.objects()
			sortByFirst(objects)
			if got := ranges(objects); !reflect.DeepEqual(got, tc.wantObjects) {
				t.Errorf("objects %v, want %v", got, tc.wantObjects)
			}
			for _, o := range objects {
				checkObjectWhole(t, "lake", o)
			}
			if got := cp.all(); !reflect.DeepEqual(got, tc.wantCheckpoints) {
				t.Errorf("checkpoints %v, want %v", got, tc.wantCheckpoints)
			}
			for reason, want := range tc.wantReasons {
				if got := env.metrics.get(MetricFlushReason + "/" + reason); got != want {
					t.Errorf("FlushReason %s = %v, want %v", reason, got, want)
				}
			}
			if got := env.metrics.get(MetricObjectsWritten); got != float64(len(tc.wantObjects)) {
				t.Errorf("ObjectsWritten = %v, want %d", got, len(tc.wantObjects))
			}
		})
	}
}

func TestSpillFilesAreRemoved(t *testing.T) {
	// GIVEN a processor with an object uploaded and one open
	env := newSinkEnv(t)
	p := env.processor(Config{MaxObjectBytes: 300})
	dir := p.cfg.SpillDir
	process(t, p, &fakeCheckpointer{}, testRecords(testShard, 0, 5, 100))
	// WHEN it is closed (the shard's processing ended)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// THEN nothing is left in the spill directory
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("spill directory holds %d entries after Close, want none", len(left))
	}
}

// hookedS3 runs beforePut before the first PutObject it forwards, as if another worker wrote in between.
type hookedS3 struct {
	S3API
	beforePut func()
	done      bool
}

func (h *hookedS3) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if !h.done {
		h.done = true
		h.beforePut()
	}
	return h.S3API.PutObject(ctx, in, optFns...)
}

// previous writes what the previous owner of a shard got to write before it lost the shard, without a checkpoint.
type previous func(t *testing.T, env *sinkEnv)

// uploaded is a previous owner that uploaded records[:n] as one object and crashed before its checkpoint.
func uploaded(records []kcl.Record, n int) previous {
	return func(t *testing.T, env *sinkEnv) {
		errCrash := errors.New("crashed before the checkpoint")
		p := env.processor(Config{MaxObjectBytes: int64(n) * 105})
		err := p.ProcessRecords(t.Context(), kcl.ProcessRecordsInput{Records: records[:n],
			Checkpointer: &fakeCheckpointer{errs: []error{errCrash}}})
		if !errors.Is(err, errCrash) {
			t.Fatalf("previous owner: %v, want its upload to land and its checkpoint to fail", err)
		}
	}
}

// leaseLostWithFour is a previous owner that lost its lease with records[:4] in its open object.
func leaseLostWithFour(records []kcl.Record) previous {
	return func(t *testing.T, env *sinkEnv) {
		p := env.processor(Config{})
		process(t, p, &fakeCheckpointer{}, records[:4])
		p.LeaseLost(t.Context())
	}
}

func TestNextOwnerAdoptsWhatThePreviousOneWrote(t *testing.T) {
	records := testRecords(testShard, 0, 9, 100)
	tests := map[string]struct {
		previous previous
		// before says whether the previous owner's object lands before the successor looks its key up, or only
		// between that look-up and the successor's upload (which S3 then refuses)
		before   bool
		maxBytes int64
		// wantCheckpoints of the successor; wantRestart: it asks to restart from its last one
		wantCheckpoints []string
		wantRestart     bool
		wantObjects     []string
	}{
		"crash between upload and checkpoint: found before the first record": {
			previous: uploaded(records, 3), before: true, maxBytes: 315,
			wantCheckpoints: []string{at(records, 2), at(records, 5), at(records, 8)},
			wantObjects:     []string{"record-0-..record-2-", "record-3-..record-5-", "record-6-..record-8-"},
		},
		"lease lost with an object open: found before the first record": {
			previous: leaseLostWithFour(records), before: true, maxBytes: 315,
			wantCheckpoints: []string{at(records, 3), at(records, 6), at(records, 8)},
			wantObjects:     []string{"record-0-..record-3-", "record-4-..record-6-", "record-7-..record-8-"},
		},
		"upload refused, the same records": {
			previous: uploaded(records, 3), maxBytes: 315,
			wantCheckpoints: []string{at(records, 2), at(records, 5), at(records, 8)},
			wantObjects:     []string{"record-0-..record-2-", "record-3-..record-5-", "record-6-..record-8-"},
		},
		"upload refused, the object ends earlier: restart after it": {
			previous: uploaded(records, 2), maxBytes: 315,
			wantCheckpoints: []string{at(records, 1)}, wantRestart: true,
			wantObjects: []string{"record-0-..record-1-"},
		},
		"upload refused, the object ends later: skip to its end": {
			previous: uploaded(records, 4), maxBytes: 315,
			wantCheckpoints: []string{at(records, 3), at(records, 6), at(records, 8)},
			wantObjects:     []string{"record-0-..record-3-", "record-4-..record-6-", "record-7-..record-8-"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := newSinkEnv(t)
			// GIVEN the previous owner's object, written before the successor starts or while it builds its first
			var client S3API = env.client
			if tc.before {
				tc.previous(t, env)
			} else {
				client = &hookedS3{S3API: env.client, beforePut: func() { tc.previous(t, env) }}
			}
			// WHEN the successor is given the shard's records from the same checkpoint
			p := env.processorWith(Config{MaxObjectBytes: tc.maxBytes}, client)
			cp := &fakeCheckpointer{}
			var err error
			for i := 0; i < len(records) && err == nil; i += 3 {
				err = p.ProcessRecords(t.Context(), kcl.ProcessRecordsInput{Records: records[i : i+3], Checkpointer: cp})
			}
			if err == nil {
				err = p.ShutdownRequested(t.Context(), kcl.ShutdownRequestedInput{Checkpointer: cp})
			}
			// THEN it adopts the object (checkpoints at its end) and writes only what comes after it
			if tc.wantRestart != errors.Is(err, kcl.ErrRestartFromCheckpoint) || (!tc.wantRestart && err != nil) {
				t.Fatalf("successor: %v; want a restart: %v", err, tc.wantRestart)
			}
			if got := cp.all(); !reflect.DeepEqual(got, tc.wantCheckpoints) {
				t.Errorf("checkpoints %v, want %v", got, tc.wantCheckpoints)
			}
			objects := env.objects()
			sortByFirst(objects)
			if got := ranges(objects); !reflect.DeepEqual(got, tc.wantObjects) {
				t.Errorf("objects %v, want %v", got, tc.wantObjects)
			}
			if !tc.wantRestart {
				checkObjects(t, "lake", objects, payloads(records))
			}
			if env.metrics.get(MetricObjectsAdopted) != 1 {
				t.Errorf("ObjectsAdopted = %v, want 1", env.metrics.get(MetricObjectsAdopted))
			}
		})
	}
}

func TestRestartAfterAdoptionWritesTheRest(t *testing.T) {
	// GIVEN a successor that adopted an object ending before its own batch, and asked to restart
	env := newSinkEnv(t)
	records := testRecords(testShard, 0, 6, 100)
	client := &hookedS3{S3API: env.client, beforePut: func() {
		prev := env.processor(Config{MaxObjectBytes: 2 * 105})
		_ = prev.ProcessRecords(t.Context(), kcl.ProcessRecordsInput{Records: records[:2],
			Checkpointer: &fakeCheckpointer{errs: []error{errors.New("crash")}}})
	}}
	first := env.processorWith(Config{MaxObjectBytes: 3 * 105}, client)
	cp := &fakeCheckpointer{}
	err := first.ProcessRecords(t.Context(), kcl.ProcessRecordsInput{Records: records[:3], Checkpointer: cp})
	if !errors.Is(err, kcl.ErrRestartFromCheckpoint) {
		t.Fatalf("first: %v, want a restart", err)
	}
	// WHEN the new processor is given every record after that checkpoint (as the worker does)
	next := env.processor(Config{MaxObjectBytes: 3 * 105})
	process(t, next, cp, records[2:])
	if err := next.ShutdownRequested(t.Context(), kcl.ShutdownRequestedInput{Checkpointer: cp}); err != nil {
		t.Fatal(err)
	}
	// THEN every record is in exactly one object
	objects := env.objects()
	checkObjects(t, "lake", objects, payloads(records))
	sortByFirst(objects)
	want := []string{"record-0-..record-1-", "record-2-..record-4-", "record-5-..record-5-"}
	if got := ranges(objects); !reflect.DeepEqual(got, want) {
		t.Errorf("objects %v, want %v", got, want)
	}
}

func TestAdoptedObjectWhoseLastRecordNeverComes(t *testing.T) {
	// GIVEN an object at the key of the first record that names a last record the shard does not hold
	env := newSinkEnv(t)
	records := testRecords(testShard, 0, 6, 100)
	key := ObjectKey("lake", FormatParquet, &records[0])
	meta := metadataOf(positionOf(&records[0]), position{records[2].SequenceNumber, 7}, 3)
	if _, err := env.client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &env.bucket, Key: &key,
		Body: strings.NewReader("x"), Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	// WHEN a processor is given the records
	p := env.processor(Config{})
	cp := &fakeCheckpointer{}
	err := p.ProcessRecords(t.Context(), kcl.ProcessRecordsInput{Records: records, Checkpointer: cp})
	// THEN it fails rather than skip records or write them twice, and checkpoints nothing
	if err == nil || !strings.Contains(err.Error(), "never came") {
		t.Errorf("process records: %v, want an error saying the adopted object's last record never came", err)
	}
	if len(cp.all()) != 0 {
		t.Errorf("checkpoints %v, want none", cp.all())
	}
}

func TestS3Faults(t *testing.T) {
	records := testRecords(testShard, 0, 6, 100)
	tests := map[string]struct {
		faults []*faultRule
		// wantFail: the first attempt of the batch fails (nothing checkpointed) and succeeds when given again
		wantFail   bool
		wantErrors float64
	}{
		"500s, then the upload lands": {
			faults:     []*faultRule{{method: http.MethodPut, status: 500, code: "InternalError", times: 2}},
			wantErrors: 2,
		},
		"slow-downs, then the upload lands": {
			faults:     []*faultRule{{method: http.MethodPut, status: 503, code: "SlowDown", times: 3}},
			wantErrors: 3,
		},
		"the upload's answer is lost: the retry finds its own object": {
			faults:     []*faultRule{{method: http.MethodPut, lose: true, times: 1}},
			wantErrors: 1,
		},
		"the look-up fails, then succeeds": {
			faults:     []*faultRule{{method: http.MethodHead, status: 500, code: "InternalError", times: 2}},
			wantErrors: 2,
		},
		"every attempt fails: the worker gives the batch again": {
			faults:     []*faultRule{{method: http.MethodPut, status: 503, code: "SlowDown", times: 4}},
			wantFail:   true,
			wantErrors: 4,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN S3 that fails as the faults say
			env := newSinkEnv(t)
			for _, f := range tc.faults {
				env.faults.add(f)
			}
			p := env.processor(Config{MaxObjectBytes: 3 * 105, UploadAttempts: 4})
			cp := &fakeCheckpointer{}
			// WHEN the processor is given the records (each batch again after an error, as the worker does)
			in := kcl.ProcessRecordsInput{Records: records, Checkpointer: cp}
			err := p.ProcessRecords(t.Context(), in)
			if tc.wantFail {
				if err == nil || errors.Is(err, kcl.ErrRestartFromCheckpoint) {
					t.Fatalf("process records: %v, want an error the worker retries", err)
				}
				if len(cp.all()) != 0 {
					t.Fatalf("checkpoints %v after a failed upload, want none", cp.all())
				}
				err = p.ProcessRecords(t.Context(), in)
			}
			if err != nil {
				t.Fatalf("process records: %v", err)
			}
			// THEN every record lands once, each object checkpointed, and the errors are counted
			checkObjects(t, "lake", env.objects(), payloads(records))
			if want := []string{at(records, 2), at(records, 5)}; !reflect.DeepEqual(cp.all(), want) {
				t.Errorf("checkpoints %v, want %v", cp.all(), want)
			}
			if got := env.metrics.get(MetricUploadErrors); got != tc.wantErrors {
				t.Errorf("UploadErrors = %v, want %v", got, tc.wantErrors)
			}
		})
	}
}

func TestFailedCheckpointIsRetriedBeforeTheNextObject(t *testing.T) {
	// GIVEN a checkpointer that fails once (DynamoDB throttled)
	env := newSinkEnv(t)
	records := testRecords(testShard, 0, 6, 100)
	p := env.processor(Config{MaxObjectBytes: 3 * 105})
	cp := &fakeCheckpointer{errs: []error{errors.New("throttled")}}
	in := kcl.ProcessRecordsInput{Records: records, Checkpointer: cp}
	// WHEN the batch fails after the first upload and is given again
	if err := p.ProcessRecords(t.Context(), in); err == nil {
		t.Fatal("process records succeeded; want the checkpoint's error")
	}
	process(t, p, cp, records)
	// THEN the first object is checkpointed, then the second, and no record is written twice
	if want := []string{at(records, 2), at(records, 5)}; !reflect.DeepEqual(cp.all(), want) {
		t.Errorf("checkpoints %v, want %v", cp.all(), want)
	}
	checkObjects(t, "lake", env.objects(), payloads(records))
}

func TestLateUploadOfTheOldOwnerIsRefused(t *testing.T) {
	// GIVEN an old owner whose upload is held in flight
	env := newSinkEnv(t)
	records := testRecords(testShard, 0, 3, 100)
	hold := env.faults.add(&faultRule{method: http.MethodPut, hold: true})
	old := env.processor(Config{MaxObjectBytes: 3 * 105})
	oldCP := &fakeCheckpointer{errs: []error{kcl.ErrLeaseLost}}
	oldDone := make(chan error, 1)
	go func() {
		oldDone <- old.ProcessRecords(context.Background(), kcl.ProcessRecordsInput{Records: records, Checkpointer: oldCP})
	}()
	<-hold.held
	env.faults.clear()
	// WHEN the new owner writes the same records, and then the old upload is released
	successor := env.processor(Config{MaxObjectBytes: 3 * 105})
	cp := &fakeCheckpointer{}
	process(t, successor, cp, records)
	close(hold.release)
	err := <-oldDone
	// THEN the old upload is refused, the old owner's checkpoint fails (its lease is gone), and the records are in
	// the successor's object only
	if !errors.Is(err, kcl.ErrLeaseLost) {
		t.Errorf("old owner: %v, want its checkpoint refused with ErrLeaseLost", err)
	}
	checkObjects(t, "lake", env.objects(), payloads(records))
	if want := []string{at(records, 2)}; !reflect.DeepEqual(cp.all(), want) {
		t.Errorf("successor's checkpoints %v, want %v", cp.all(), want)
	}
}

func TestRecordsOutsideShardRange(t *testing.T) {
	tests := map[string]struct {
		keep        bool
		want        []string
		wantDropped float64
	}{
		"dropped by default (the KPL put them again to the right shard)": {
			want: []string{"record-0-", "record-3-", "record-4-"}, wantDropped: 3,
		},
		"kept when asked": {keep: true, want: []string{"record-0-", "record-1-", "record-2-", "record-3-", "record-4-", "record-5-"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN records 1, 2 and 5 outside the shard's hash key range
			env := newSinkEnv(t)
			records := testRecords(testShard, 0, 6, 100)
			for _, i := range []int{1, 2, 5} {
				records[i].OutsideShardRange = true
			}
			p := env.processor(Config{KeepRecordsOutsideShardRange: tc.keep})
			cp := &fakeCheckpointer{}
			// WHEN the processor is given them and shut down
			process(t, p, cp, records)
			if err := p.ShutdownRequested(t.Context(), kcl.ShutdownRequestedInput{Checkpointer: cp}); err != nil {
				t.Fatal(err)
			}
			// THEN only the records kept are in the object
			var got []string
			for _, o := range env.objects() {
				checkObjectWhole(t, "lake", o)
				for _, r := range o.Rows {
					got = append(got, strings.TrimRight(string(r.Data), "x"))
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("records in objects %v, want %v", got, tc.want)
			}
			if got := env.metrics.get(MetricRecordsOutsideShardRangeDropped); got != tc.wantDropped {
				t.Errorf("RecordsOutsideShardRangeDropped = %v, want %v", got, tc.wantDropped)
			}
		})
	}
}
