package load

import (
	"context"
	"sync"
	"time"
)

// pacer spaces records evenly at a rate: the n-th record (from 0) is due at start + n/rate, whichever sender
// sends it. A sender that falls behind sends at once, so the run catches up instead of drifting below its rate;
// the rate can only be missed when the producer is slower than the rate, which the progress line then shows.
type pacer struct {
	start    time.Time
	interval time.Duration // 0: no pacing

	mu   sync.Mutex
	next int64 // index of the next record to be released
}

func newPacer(start time.Time, rate float64) *pacer {
	p := &pacer{start: start}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
	}
	return p
}

// wait reserves n records and waits until the first of them is due, or ctx is done.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	p.mu.Lock()
	due := p.start.Add(time.Duration(p.next) * p.interval)
	p.next += int64(n)
	p.mu.Unlock()
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
