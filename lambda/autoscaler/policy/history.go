package policy

import (
	"slices"
	"time"
)

// UpdateShardCountWindow is the rolling window over which Kinesis counts UpdateShardCount calls per stream.
const UpdateShardCountWindow = 24 * time.Hour

// History is the autoscaler's own record of what it did to a stream. It is stored durably between invocations
// (the scaler package keeps it in the stream's tags), so the rolling UpdateShardCount limit and the cool-down hold
// across Lambda cold starts.
type History struct {
	// UpdateShardCountCalls are the times of successful UpdateShardCount calls within the last 24 hours, oldest first.
	UpdateShardCountCalls []time.Time
	// LastAction is the time of the most recent resharding action of any kind; zero when there was none.
	LastAction time.Time
	// LastActionKind is the kind of that action.
	LastActionKind Action
	// LastScaleDown is true when that action was an UpdateShardCount to fewer shards: a scale-down that follows it
	// continues it and is not held by the cool-down.
	LastScaleDown bool
	// Settled is when the stream was first seen ACTIVE again after LastAction; zero while that is not known.
	// Throttling observed before this moment happened with the old shard layout and does not count.
	Settled time.Time
}

// CallsWithin reports how many UpdateShardCount calls fall in the rolling window ending at now.
func (h History) CallsWithin(now time.Time) int {
	n := 0
	for _, t := range h.UpdateShardCountCalls {
		if t.After(now.Add(-UpdateShardCountWindow)) && !t.After(now) {
			n++
		}
	}
	return n
}

// RecordDecision notes the action of d, made at time at (see Record), and whether it scaled down.
func (h History) RecordDecision(d Decision, at time.Time) History {
	out := h.Record(d.Action, at)
	out.LastScaleDown = d.Action == ActionUpdateShardCount && d.TargetShardCount < d.CurrentShardCount
	return out
}

// Record notes an action that Kinesis accepted at time at. It returns the updated history and leaves h unchanged.
func (h History) Record(kind Action, at time.Time) History {
	out := History{LastAction: at, LastActionKind: kind}
	for _, t := range h.UpdateShardCountCalls {
		if t.After(at.Add(-UpdateShardCountWindow)) {
			out.UpdateShardCountCalls = append(out.UpdateShardCountCalls, t)
		}
	}
	if kind == ActionUpdateShardCount {
		out.UpdateShardCountCalls = append(out.UpdateShardCountCalls, at)
	}
	slices.SortFunc(out.UpdateShardCountCalls, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// MarkSettled records that the stream was seen ACTIVE at time at. It reports whether the history changed (an action
// was pending settlement), so callers store it only when needed.
func (h History) MarkSettled(at time.Time) (History, bool) {
	if h.LastAction.IsZero() || !h.Settled.IsZero() {
		return h, false
	}
	h.Settled = at
	return h, true
}

// throttleSince is the earliest minute start whose throttling reflects the current shard layout.
func (h History) throttleSince(now time.Time) time.Time {
	switch {
	case h.LastAction.IsZero():
		return time.Time{}
	case h.Settled.IsZero():
		// The stream was never seen settled after the last action, so no observed minute is known to be
		// free of the old layout.
		return ceilMinute(now)
	default:
		return ceilMinute(h.Settled)
	}
}

func ceilMinute(t time.Time) time.Time {
	tr := t.Truncate(time.Minute)
	if tr.Equal(t) {
		return t
	}
	return tr.Add(time.Minute)
}
