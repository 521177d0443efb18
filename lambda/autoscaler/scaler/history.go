package scaler

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// The action history lives in two tags of the stream itself. Tags need no extra resource or IAM principal beyond
// the stream (kinesis:ListTagsForStream and kinesis:AddTagsToStream on its ARN), live and die with the stream (a
// re-created stream starts with a fresh history, as Kinesis' own call count does), and their API rate (5/s) is far
// above one read and at most three writes a minute (settle the last action, record the next one before making
// it, take the record back if Kinesis refuses). Values use only characters Kinesis allows in tag values.
const (
	// TagUpdateCalls holds the Unix seconds of UpdateShardCount calls in the last 24 hours, joined by "_".
	TagUpdateCalls = "streamproc-autoscaler-update-calls"
	// TagLastAction holds "<action>/<unix seconds>/<unix seconds settled, 0 while not settled>", and "/down" after
	// those when the action was a scale-down (a tag written before that field existed has three fields).
	TagLastAction = "streamproc-autoscaler-last-action"
)

// ErrBadHistoryTag means a history tag on the stream cannot be read; the autoscaler does not act on a history it
// cannot trust (it could overrun the UpdateShardCount limit), and the message names the tag to fix or delete.
var ErrBadHistoryTag = errors.New("unreadable autoscaler history tag")

// EncodeHistory returns the tag values that store h.
func EncodeHistory(h policy.History) map[string]string {
	calls := make([]string, 0, len(h.UpdateShardCountCalls))
	for _, t := range h.UpdateShardCountCalls {
		calls = append(calls, strconv.FormatInt(t.Unix(), 10))
	}
	last := "none/0/0"
	if !h.LastAction.IsZero() {
		settled := int64(0)
		if !h.Settled.IsZero() {
			settled = h.Settled.Unix()
		}
		last = fmt.Sprintf("%s/%d/%d", h.LastActionKind, h.LastAction.Unix(), settled)
		if h.LastScaleDown {
			last += "/down"
		}
	}
	return map[string]string{TagUpdateCalls: strings.Join(calls, "_"), TagLastAction: last}
}

// DecodeHistory reads the history from the stream's tags. Absent tags mean no history (a stream the autoscaler
// never touched).
func DecodeHistory(tags map[string]string) (policy.History, error) {
	var h policy.History
	if v := tags[TagUpdateCalls]; v != "" {
		for _, f := range strings.Split(v, "_") {
			t, err := parseUnix(f)
			if err != nil || t.IsZero() {
				return policy.History{}, fmt.Errorf("%w %s=%q: %q is not a Unix time", ErrBadHistoryTag, TagUpdateCalls, v, f)
			}
			h.UpdateShardCountCalls = append(h.UpdateShardCountCalls, t)
		}
	}
	v, ok := tags[TagLastAction]
	if !ok {
		return h, nil
	}
	parts := strings.Split(v, "/")
	down := len(parts) == 4 && parts[3] == "down" && parts[0] == string(policy.ActionUpdateShardCount)
	if len(parts) != 3 && !down {
		return policy.History{}, fmt.Errorf("%w %s=%q: want action/unix/unix, or UpdateShardCount/unix/unix/down", ErrBadHistoryTag, TagLastAction, v)
	}
	at, err1 := parseUnix(parts[1])
	settled, err2 := parseUnix(parts[2])
	if err := errors.Join(err1, err2); err != nil {
		return policy.History{}, fmt.Errorf("%w %s=%q: %w", ErrBadHistoryTag, TagLastAction, v, err)
	}
	switch kind := policy.Action(parts[0]); kind {
	case "none":
		if !at.IsZero() {
			return policy.History{}, fmt.Errorf("%w %s=%q: no action but a time", ErrBadHistoryTag, TagLastAction, v)
		}
	case policy.ActionUpdateShardCount, policy.ActionSplitShard, policy.ActionMergeShards:
		if at.IsZero() {
			return policy.History{}, fmt.Errorf("%w %s=%q: action without a time", ErrBadHistoryTag, TagLastAction, v)
		}
		h.LastActionKind, h.LastAction, h.Settled, h.LastScaleDown = kind, at, settled, down
	default:
		return policy.History{}, fmt.Errorf("%w %s=%q: unknown action %q", ErrBadHistoryTag, TagLastAction, v, parts[0])
	}
	return h, nil
}

// parseUnix parses Unix seconds; "0" is the zero time.
func parseUnix(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		return time.Time{}, fmt.Errorf("%q is not a Unix time", s)
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return time.Unix(n, 0).UTC(), nil
}
