package s3sink

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamproc/streamproc/internal/eventually"
)

func TestWorkersLandEveryRecordOnceThroughReshardingAndS3Faults(t *testing.T) {
	// GIVEN three workers whose S3 answers their first three uploads with SlowDown (more than the SDK's own
	// retries absorb), then one upload in four with a 500 and one look-up in three with SlowDown
	l := newLake(t, 2)
	metrics := &countingRecorder{}
	var injected []func() int
	for i := range 3 {
		faults := newFaultTransport()
		rules := []*faultRule{
			faults.add(&faultRule{method: http.MethodPut, times: 3, status: 503, code: "SlowDown"}),
			faults.add(&faultRule{method: http.MethodPut, every: 4, status: 500, code: "InternalError"}),
			faults.add(&faultRule{method: http.MethodHead, every: 3, status: 503, code: "SlowDown"}),
		}
		injected = append(injected, func() (n int) {
			for _, r := range rules {
				n += faults.hits(r)
			}
			return n
		})
		l.startWorker(fmt.Sprintf("worker-%d", i), workerOptions{s3Faults: faults, metrics: metrics})
	}
	// WHEN records are put before, during and after resharding from 2 to 4 shards
	l.put(300)
	resharded := make(chan struct{})
	go func() {
		defer close(resharded)
		l.reshard(4)
	}()
	l.put(300)
	<-resharded
	l.put(300)
	// THEN every record is in exactly one whole object, in order per key, though uploads failed on the way
	l.check(l.waitLanded(2 * time.Minute))
	var faults int
	for _, n := range injected {
		faults += n()
	}
	if faults == 0 || metrics.get(MetricUploadErrors) == 0 {
		t.Errorf("%d faults injected, %v upload errors counted by the sink; want both", faults, metrics.get(MetricUploadErrors))
	}
	for key, lease := range l.leases() {
		if key == "shardId-000000000000" && !lease.Finished() {
			t.Errorf("parent shard %s checkpointed at %s, want SHARD_END", key, lease.Checkpoint)
		}
	}
}

func TestLeaseTakenWhileAnUploadIsInFlight(t *testing.T) {
	tests := map[string]struct {
		// heldFirst: the old owner's held upload is released before the successor's upload, which S3 then refuses
		// (the successor adopts); otherwise it is released after the successor's object landed, and is refused.
		heldFirst bool
	}{
		"the successor writes first, the late upload is refused": {},
		"the late upload lands first, the successor adopts it":   {heldFirst: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := newLake(t, 1)
			l.put(40)
			// GIVEN a worker whose first upload is held in flight
			oldFaults := newFaultTransport()
			oldHold := oldFaults.add(&faultRule{method: http.MethodPut, hold: true})
			cut := &partition{next: http.DefaultTransport.(*http.Transport).Clone()}
			oldDDB := l.e.DynamoDBClient(func(o *dynamodb.Options) { o.HTTPClient = &http.Client{Transport: cut} })
			l.startWorker("old", workerOptions{s3Faults: oldFaults, ddb: oldDDB})
			t.Cleanup(func() { cut.cut.Store(false) }) // before the worker stops: its shutdown needs the table
			<-oldHold.held
			// WHEN it is cut off from the lease table, so its lease expires and another worker takes the shard
			cut.cut.Store(true)
			newFaults := newFaultTransport()
			var newHold *faultRule
			if tc.heldFirst {
				newHold = newFaults.add(&faultRule{method: http.MethodPut, hold: true, times: 1})
			}
			metrics := &countingRecorder{}
			l.startWorker("new", workerOptions{s3Faults: newFaults, metrics: metrics})
			if tc.heldFirst {
				// the successor looked the key up (nothing there) and its upload is on the way: the old one lands
				<-newHold.held
				close(oldHold.release)
				eventually.Succeeds(t, 30*time.Second, func() error { return atLeastObjects(l, 1) })
				close(newHold.release)
			} else {
				eventually.Succeeds(t, time.Minute, func() error { return atLeastObjects(l, 1) })
				close(oldHold.release)
			}
			l.put(40)
			// THEN every record is in exactly one object: whichever upload landed first won, the other changed nothing
			l.check(l.waitLanded(time.Minute))
			eventually.Succeeds(t, 30*time.Second, func() error {
				if got := oldFaults.heldStatuses(oldHold); len(got) == 0 {
					return fmt.Errorf("the old owner's held upload has not reached S3 yet")
				}
				return nil
			})
			statuses := oldFaults.heldStatuses(oldHold)
			if tc.heldFirst {
				if statuses[0] != http.StatusOK || !slices.Equal(newFaults.heldStatuses(newHold), []int{http.StatusPreconditionFailed}) {
					t.Errorf("old upload answered %v, successor's %v; want the old one to land and the successor's refused (412)",
						statuses, newFaults.heldStatuses(newHold))
				}
				if metrics.get(MetricObjectsAdopted) == 0 {
					t.Error("the successor adopted no object")
				}
			} else if slices.Contains(statuses, http.StatusOK) || !slices.Contains(statuses, http.StatusPreconditionFailed) {
				t.Errorf("the old owner's held uploads answered %v, want each refused (412)", statuses)
			}
		})
	}
}

// atLeastObjects fails until the lake's bucket holds n objects.
func atLeastObjects(l *lake, n int) error {
	if got := len(listObjects(l.t, l.s3, l.bucket)); got < n {
		return fmt.Errorf("%d objects, want at least %d", got, n)
	}
	return nil
}
