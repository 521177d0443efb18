package policy

import (
	"fmt"
	"math/big"
	"slices"
	"testing"
	"time"
)

// shardsAt returns open shards whose hash ranges start at the given shares of the key space (the first at 0), named
// a, b, c, ...
func shardsAt(starts ...float64) []Shard {
	key := func(f float64) *big.Int {
		k, _ := new(big.Float).Mul(new(big.Float).SetInt(keySpace), big.NewFloat(f)).Int(nil)
		return k
	}
	out := make([]Shard, len(starts))
	for i, f := range starts {
		end := new(big.Int).Sub(keySpace, big.NewInt(1))
		if i+1 < len(starts) {
			end = new(big.Int).Sub(key(starts[i+1]), big.NewInt(1))
		}
		out[i] = Shard{ID: string(rune('a' + i)), StartingHashKey: key(f), EndingHashKey: end}
	}
	return out
}

// loads gives each shard 15 minutes at its load (in shards), and the stream their sum.
func loads(shards []Shard, each ...float64) (stream []Minute, byShard map[string][]Minute) {
	byShard = map[string][]Minute{}
	total := 0.0
	for i, sh := range shards {
		byShard[sh.ID] = utilMinutes(1, repeat(each[i], 15)...)
		total += each[i]
	}
	return utilMinutes(1, repeat(total, 15)...), byShard
}

// shareOf returns where key lies in sh's hash range, as a share of its width.
func shareOf(sh Shard, key string) float64 {
	k, _ := new(big.Int).SetString(key, 10)
	off, _ := new(big.Float).SetInt(new(big.Int).Sub(k, sh.StartingHashKey)).Float64()
	w, _ := new(big.Float).SetInt(new(big.Int).Sub(sh.EndingHashKey, sh.StartingHashKey)).Float64()
	return off / w
}

// Rule 7: three adjacent shards that pack into two, with no pair that fits in one, have the middle one split at the
// point its load divides.
func TestRuleCarve(t *testing.T) {
	tests := map[string]struct {
		starts    []float64
		each      []float64
		history   History
		wantRule  Rule
		wantShard string
		wantCut   float64 // share of the split shard's range where it is split
	}{
		"the middle shard is split to fill the lighter side up to half": {
			// a+b+c = 1.25 packs into two shards of 0.625: b's first 75% (0.375) joins a (0.25).
			starts: []float64{0, 0.25, 0.5, 0.75}, each: []float64{0.25, 0.5, 0.5, 0.6},
			wantRule: RuleCarve, wantShard: "b", wantCut: 0.75,
		},
		"the lighter side may be the right one": {
			// a+b+c = 1.35: c (0.25) gets b's last 85% (0.425).
			starts: []float64{0, 0.25, 0.5, 0.75}, each: []float64{0.6, 0.5, 0.25, 0.6},
			wantRule: RuleCarve, wantShard: "b", wantCut: 0.15,
		},
		"a dense middle shard may hold a hot key and is not carved": {
			// b carries 0.5 on a tenth of the key space, five times the stream's density.
			starts: []float64{0, 0.45, 0.55}, each: []float64{0.3, 0.5, 0.3},
			wantRule: RuleSteady,
		},
		"a run too full for two shards is not carved": {
			starts: []float64{0, 0.25, 0.5, 0.75}, each: []float64{0.5, 0.5, 0.5, 0.5},
			wantRule: RuleSteady,
		},
		"no carve in the cool-down after a resize": {
			starts: []float64{0, 0.25, 0.5, 0.75}, each: []float64{0.25, 0.5, 0.5, 0.6}, history: calls(5 * time.Minute),
			wantRule: RuleSteady,
		},
		"a carve continues a reshaping without the cool-down": {
			starts: []float64{0, 0.25, 0.5, 0.75}, each: []float64{0.25, 0.5, 0.5, 0.6}, history: merged(History{}, 2*time.Minute),
			wantRule: RuleCarve, wantShard: "b", wantCut: 0.75,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN shards with 15 minutes at their loads and no pair that fits in one
			p, err := New(Config{})
			if err != nil {
				t.Fatal(err)
			}
			shards := shardsAt(tc.starts...)
			stream, byShard := loads(shards, tc.each...)
			// WHEN the policy decides
			d := p.Decide(Input{Now: now, Shards: shards, Stream: stream, ShardMinutes: byShard, History: tc.history})
			// THEN it carves the expected shard where its load divides, or does nothing
			if d.Rule != tc.wantRule {
				t.Fatalf("rule %s (%s), want %s", d.Rule, d.Reason, tc.wantRule)
			}
			if tc.wantRule != RuleCarve {
				return
			}
			if d.Action != ActionSplitShard || d.ShardID != tc.wantShard || d.TargetShardCount != len(shards)+1 {
				t.Fatalf("got %+v, want a split of %s", d, tc.wantShard)
			}
			i := int(tc.wantShard[0] - 'a')
			if cut := shareOf(shards[i], d.NewStartingHashKey); cut < tc.wantCut-0.001 || cut > tc.wantCut+0.001 {
				t.Errorf("split at %.4f of %s's range, want %.2f", cut, tc.wantShard, tc.wantCut)
			}
		})
	}
}

// Rule 6 picks the pair that fills one shard best, up to the merge limit (72.5 %, halfway from the 70 % target to
// the 75 % threshold), and only while the stream fits in one shard fewer at the target; cold or not.
func TestMergePicksTheBestFit(t *testing.T) {
	tests := map[string]struct {
		streamUtil float64 // of the 4 shards
		each       []float64
		wantPair   string // "" for no merge
	}{
		"a warm pair that fits is merged":                 {0.4, []float64{0.3, 0.6, 0.5, 0.2}, "c+d"},
		"the fullest pair that fits goes first":           {0.3625, []float64{0.3, 0.2, 0.5, 0.45}, "b+c"},
		"no pair within the merge limit":                  {0.45, []float64{0.5, 0.3, 0.45, 0.55}, ""},
		"no merge when one fewer shard would be too full": {0.7, []float64{0.9, 0.9, 0.5, 0.2}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN 4 shards with 15 minutes at their loads
			p, err := New(Config{})
			if err != nil {
				t.Fatal(err)
			}
			shards := uniformShards(4)
			_, byShard := loads(shards, tc.each...)
			// WHEN the policy decides
			d := p.Decide(Input{Now: now, Shards: shards, Stream: utilMinutes(4, repeat(tc.streamUtil, 15)...), ShardMinutes: byShard})
			// THEN it merges the best-fitting pair, or nothing
			got := ""
			if d.Action == ActionMergeShards {
				got = fmt.Sprintf("%c+%c", 'a'+rune(slices.IndexFunc(shards, func(s Shard) bool { return s.ID == d.ShardID })),
					'a'+rune(slices.IndexFunc(shards, func(s Shard) bool { return s.ID == d.AdjacentShardID })))
			}
			if got != tc.wantPair {
				t.Fatalf("merged %q (%s: %s), want %q", got, d.Rule, d.Reason, tc.wantPair)
			}
		})
	}
}

// A shard new from a split has the minutes of its parent from before it existed, in the share of the load it took
// from its sibling, so it can be merged without waiting out a hold window of its own; the two halves of a split are
// never merged back.
func TestMergeReadsParentsMinutes(t *testing.T) {
	// c and d are the halves of p, split 3 minutes ago: p carried 0.8 before, c takes a quarter of it.
	parent := shardsAt(0, 0.5)[1]
	parent.ID = "p"
	own := func(l float64) []Minute { return utilMinutes(1, l, l, l) }
	tests := map[string]struct {
		shards   []Shard
		minutes  map[string][]Minute
		history  History
		wantRule Rule
		wantPair string
	}{
		"a split half merges with its other neighbour on its parent's minutes": {
			shards: []Shard{shardsAt(0, 0.5)[0], {ID: "c", ParentShardID: "p"}, {ID: "d", ParentShardID: "p"}},
			minutes: map[string][]Minute{
				"a": utilMinutes(1, repeat(0.45, 15)...), "p": utilMinutes(1, append(repeat(0.8, 12), -1, -1, -1)...),
				"c": own(0.2), "d": own(0.6),
			},
			wantRule: RuleMergeShards, wantPair: "a+c",
		},
		"without the parent's minutes a new shard waits for its own hold window": {
			shards: []Shard{shardsAt(0, 0.5)[0], {ID: "c", ParentShardID: "p"}, {ID: "d", ParentShardID: "p"}},
			minutes: map[string][]Minute{
				"a": utilMinutes(1, repeat(0.45, 15)...), "c": own(0.2), "d": own(0.6),
			},
			wantRule: RuleSteady,
		},
		"the halves of one split are not merged back": {
			shards: []Shard{{ID: "c", ParentShardID: "p"}, {ID: "d", ParentShardID: "p"}},
			minutes: map[string][]Minute{
				"p": utilMinutes(1, append(repeat(0.3, 12), -1, -1, -1)...), "c": own(0.1), "d": own(0.2),
			},
			history:  calls(hoursAgo(7)...), // only the reserved calls remain: a scale-down would merge
			wantRule: RuleReserve,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN the split halves c [0.5, 0.6) and d [0.6, 1) of p [0.5, 1)
			halves := shardsAt(0, 0.5, 0.6)
			for i := range tc.shards {
				switch tc.shards[i].ID {
				case "c":
					tc.shards[i].StartingHashKey, tc.shards[i].EndingHashKey = halves[1].StartingHashKey, halves[1].EndingHashKey
				case "d":
					tc.shards[i].StartingHashKey, tc.shards[i].EndingHashKey = halves[2].StartingHashKey, halves[2].EndingHashKey
				}
			}
			total := 0.0
			for _, sh := range tc.shards {
				total += load(tc.minutes[sh.ID][len(tc.minutes[sh.ID])-1])
			}
			p, err := New(Config{})
			if err != nil {
				t.Fatal(err)
			}
			// WHEN the policy decides with p among the closed shards
			d := p.Decide(Input{
				Now: now, Shards: tc.shards, ClosedShards: []Shard{parent}, ShardMinutes: tc.minutes,
				Stream: utilMinutes(1, repeat(total, 15)...), History: tc.history,
			})
			// THEN it merges the expected pair, or holds
			if d.Rule != tc.wantRule {
				t.Fatalf("rule %s (%s), want %s", d.Rule, d.Reason, tc.wantRule)
			}
			if got := fmt.Sprintf("%s+%s", d.ShardID, d.AdjacentShardID); tc.wantPair != "" && got != tc.wantPair {
				t.Errorf("merged %s, want %s", got, tc.wantPair)
			}
		})
	}
}
