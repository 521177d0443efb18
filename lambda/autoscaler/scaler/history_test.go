package scaler

import (
	"errors"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// tagValue is what Kinesis accepts in a tag value.
var tagValue = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$`)

func TestHistoryTagsRoundTrip(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]policy.History{
		"empty": {},
		"ten calls, settled": {
			UpdateShardCountCalls: func() []time.Time {
				var ts []time.Time
				for i := range 10 {
					ts = append(ts, t0.Add(time.Duration(i)*time.Hour))
				}
				return ts
			}(),
			LastAction: t0.Add(9 * time.Hour), LastActionKind: policy.ActionUpdateShardCount, Settled: t0.Add(9*time.Hour + 3*time.Minute),
		},
		"split not yet settled": {LastAction: t0, LastActionKind: policy.ActionSplitShard},
		"merge":                 {LastAction: t0, LastActionKind: policy.ActionMergeShards, Settled: t0.Add(time.Minute)},
		"scale-down":            {LastAction: t0, LastActionKind: policy.ActionUpdateShardCount, LastScaleDown: true},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			tags := EncodeHistory(h)
			for k, v := range tags {
				if !tagValue.MatchString(v) {
					t.Errorf("tag %s value %q has characters Kinesis rejects or is too long", k, v)
				}
			}
			got, err := DecodeHistory(tags)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, h) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, h)
			}
		})
	}
}

func TestDecodeHistoryRejectsBadTags(t *testing.T) {
	tests := map[string]map[string]string{
		"call not a number":     {TagUpdateCalls: "1700000000_soon"},
		"negative call":         {TagUpdateCalls: "-5"},
		"last action two parts": {TagLastAction: "UpdateShardCount/1700000000"},
		"unknown action":        {TagLastAction: "Reboot/1700000000/0"},
		"action without time":   {TagLastAction: "SplitShard/0/0"},
		"none with a time":      {TagLastAction: "none/1700000000/0"},
		"settled not a number":  {TagLastAction: "MergeShards/1700000000/x"},
		"a merge scaled down":   {TagLastAction: "MergeShards/1700000000/0/down"},
		"unknown fourth field":  {TagLastAction: "UpdateShardCount/1700000000/0/up"},
	}
	for name, tags := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeHistory(tags); !errors.Is(err, ErrBadHistoryTag) {
				t.Fatalf("err = %v, want ErrBadHistoryTag", err)
			}
		})
	}
}

func FuzzDecodeHistory(f *testing.F) {
	f.Add("1700000000_1700003600", "UpdateShardCount/1700003600/1700003700")
	f.Add("", "none/0/0")
	f.Add("_", "SplitShard//")
	f.Fuzz(func(t *testing.T, calls, last string) {
		h, err := DecodeHistory(map[string]string{TagUpdateCalls: calls, TagLastAction: last})
		if err != nil {
			if !errors.Is(err, ErrBadHistoryTag) {
				t.Fatalf("error not ErrBadHistoryTag: %v", err)
			}
			return
		}
		// Whatever decodes must encode and decode to the same history.
		again, err := DecodeHistory(EncodeHistory(h))
		if err != nil || !reflect.DeepEqual(again, h) {
			t.Fatalf("re-encoding %+v gave %+v, %v", h, again, err)
		}
	})
}
