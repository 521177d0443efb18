package policy

// The shard-level rules: which shard is hot and where to split it (rule 4), which adjacent shards to merge (rule 6),
// and which shard to carve so that a run of shards packs into one shard fewer (rule 7). They read shard-level
// metrics, and a shard created by a split or merge borrows the minutes from before it existed from its parents.

import (
	"cmp"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// hotShard returns the busiest shard that is over HotShardUtilisation for ScaleUpMinutes minutes or throttled,
// if it can still be split.
func (p *Policy) hotShard(in Input, since time.Time) (*Shard, string) {
	c := p.cfg
	var best *Shard
	var bestLoad float64
	reason := ""
	for i := range in.Shards {
		sh := &in.Shards[i]
		s := known(in.ShardMinutes[sh.ID])
		if len(s) == 0 || in.Now.Sub(s[len(s)-1].Start) > c.MaxDataAge || !splittable(*sh, c.MaxShards) {
			continue
		}
		l := load(s[len(s)-1])
		why := ""
		if th := s.throttledSince(since); th > 0 {
			why = fmt.Sprintf("shard %s throttled %.0f records in a minute (load %.0f%% of one shard)", sh.ID, th, 100*l)
		} else if tail := s.lastConsecutive(c.ScaleUpMinutes); tail != nil {
			if low := tail.lowestLoad(); low > c.HotShardUtilisation {
				why = fmt.Sprintf("shard %s above %.0f%% of one shard for %d minutes (lowest %.0f%%)", sh.ID, 100*c.HotShardUtilisation, c.ScaleUpMinutes, 100*low)
			}
		}
		if why != "" && (best == nil || l > bestLoad) {
			best, bestLoad, reason = sh, l, why
		}
	}
	return best, reason
}

// splittable reports whether a shard is still wide enough to split. Splitting halves the range; a single partition
// key above one shard's limit can never be fixed by resharding, and this bound stops chasing it.
func splittable(sh Shard, maxShards int) bool {
	if sh.StartingHashKey == nil || sh.EndingHashKey == nil {
		return false
	}
	width := new(big.Int).Sub(sh.EndingHashKey, sh.StartingHashKey)
	minWidth := new(big.Int).Lsh(big.NewInt(1), 128)
	minWidth.Div(minWidth, big.NewInt(int64(4*maxShards)))
	return width.Cmp(minWidth) >= 0
}

// Midpoint returns the split point of a hash range: the first key of the upper half.
func Midpoint(start, end *big.Int) *big.Int {
	w := new(big.Int).Sub(end, start)
	w.Add(w, big.NewInt(1))
	w.Rsh(w, 1)
	return w.Add(w, start)
}

// splitPoint is where a hot shard is split: the midpoint of its hash range, which halves the load of keys spread
// evenly over it. A split point chosen from the shard's load is decided here.
func splitPoint(sh Shard) *big.Int {
	return Midpoint(sh.StartingHashKey, sh.EndingHashKey)
}

// split is a decision to split shard sh at its splitPoint.
func (p *Policy) split(s *situation, sh Shard, reason string) *Decision {
	d := s.decision()
	d.Action, d.Rule = ActionSplitShard, RuleHotShard
	d.ShardID = sh.ID
	d.NewStartingHashKey = splitPoint(sh).String()
	d.TargetShardCount = s.n + 1
	d.Reason = fmt.Sprintf("%s; splitting it at its hash-range midpoint", reason)
	return &d
}

// Constants of the shard-level rules.
const (
	// ownMinutes is how many minutes of its own a shard needs before it is merged or carved: a shard borrows its
	// history from its parents on the assumption that their load was spread evenly over their hash ranges, which a
	// hot key breaks, so its own minutes must confirm it first.
	ownMinutes = 3
	// evenDensity bounds the load per key-space width of a shard that may be carved, against the stream's: a
	// denser shard may hold a hot key, and a carve at a load-weighted point relies on an even spread.
	evenDensity = 1.5
	// minCarve is the smallest share of a shard's hash range a carve cuts off.
	minCarve = 0.05
	// carveMargin keeps a carve's pieces this share below the merge limit with their neighbours.
	carveMargin = 0.02
)

// shardWindow is one open shard's load over the hold window.
type shardWindow struct {
	shard Shard
	// byMinute is the load of each known minute: the shard's own, and from before it existed its parents'.
	byMinute map[time.Time]float64
	// peak is the highest of those loads.
	peak float64
	// ready is true when the window is known well enough to merge or carve the shard: at most MaxMissingMinutes
	// missing, no throttling, data within MaxDataAge, and at least ownMinutes minutes of its own.
	ready bool
}

// shardWindows returns the hold window of every open shard with a hash range, sorted by starting hash key; nil
// without shard-level metrics.
func (p *Policy) shardWindows(in Input) []shardWindow {
	c := p.cfg
	if in.ShardMinutes == nil {
		return nil
	}
	parents := make(map[string]Shard, len(in.ClosedShards))
	for _, sh := range in.ClosedShards {
		parents[sh.ID] = sh
	}
	var out []shardWindow
	for _, sh := range in.Shards {
		if sh.StartingHashKey == nil || sh.EndingHashKey == nil {
			continue
		}
		own := known(in.ShardMinutes[sh.ID])
		hist := shardHistory(in, parents, sh, own)
		w := shardWindow{shard: sh, byMinute: map[time.Time]float64{}}
		win, missing := hist.window(c.ScaleDownMinutes)
		for _, m := range win {
			w.byMinute[m.Start] = load(m)
			w.peak = max(w.peak, load(m))
		}
		w.ready = len(own) >= ownMinutes && in.Now.Sub(own[len(own)-1].Start) <= c.MaxDataAge &&
			missing <= c.MaxMissingMinutes && win.throttledSince(time.Time{}) == 0
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b shardWindow) int { return cmpKey(a.shard.StartingHashKey, b.shard.StartingHashKey) })
	return out
}

// windowsOf returns shardWindows of the situation's input, worked out once per decision.
func (p *Policy) windowsOf(s *situation) []shardWindow {
	if !s.windowsDone {
		s.windows, s.windowsDone = p.shardWindows(s.in), true
	}
	return s.windows
}

// shardHistory returns own, the known minutes of open shard sh, preceded by the minutes from before its first one
// that its parents (in parents, with their minutes in in.ShardMinutes) had: for a merge the sum of both parents',
// for a split the parent's scaled by the share of the load sh took (see splitShare). Without parents it returns
// own.
func shardHistory(in Input, parents map[string]Shard, sh Shard, own series) series {
	first := time.Time{}
	if len(own) > 0 {
		first = own[0].Start
	}
	before := func(m Minute) bool { return first.IsZero() || m.Start.Before(first) }
	var derived []Minute
	switch a, b := sh.ParentShardID, sh.AdjacentParentShardID; {
	case a != "" && b != "":
		other := map[time.Time]Minute{}
		for _, m := range known(in.ShardMinutes[b]) {
			other[m.Start] = m
		}
		for _, m := range known(in.ShardMinutes[a]) {
			if o, ok := other[m.Start]; ok && before(m) {
				derived = append(derived, scaled(m, 1).plus(o))
			}
		}
	case a != "":
		parent, ok := parents[a]
		if !ok {
			return own
		}
		share := splitShare(in, parent, sh, own)
		for _, m := range known(in.ShardMinutes[a]) {
			if before(m) {
				derived = append(derived, scaled(m, share))
			}
		}
	}
	return known(append(derived, own...))
}

// splitShare is the share of its parent's load that split child sh carries: measured against its sibling over the
// minutes both have of their own when the sibling is open (a split at a hot key divides the load unevenly), else
// the share of the parent's hash range it took.
func splitShare(in Input, parent, sh Shard, own series) float64 {
	i := slices.IndexFunc(in.Shards, func(o Shard) bool {
		return o.ID != sh.ID && o.ParentShardID == sh.ParentShardID && o.AdjacentParentShardID == ""
	})
	if i >= 0 {
		sibling := map[time.Time]float64{}
		for _, m := range known(in.ShardMinutes[in.Shards[i].ID]) {
			sibling[m.Start] = load(m)
		}
		var mine, theirs float64
		for _, m := range own {
			if l, ok := sibling[m.Start]; ok {
				mine, theirs = mine+load(m), theirs+l
			}
		}
		if mine+theirs > 0 {
			return mine / (mine + theirs)
		}
	}
	return width(sh) / width(parent)
}

// scaled is the write part of m times f.
func scaled(m Minute, f float64) Minute {
	return Minute{Start: m.Start, WriteKnown: m.WriteKnown, IncomingBytes: f * m.IncomingBytes,
		IncomingRecords: f * m.IncomingRecords, ThrottledRecords: f * m.ThrottledRecords}
}

// plus is the write part of m and o summed.
func (m Minute) plus(o Minute) Minute {
	m.IncomingBytes += o.IncomingBytes
	m.IncomingRecords += o.IncomingRecords
	m.ThrottledRecords += o.ThrottledRecords
	return m
}

// width is the share of the hash-key space a shard covers, in (0, 1].
func width(sh Shard) float64 {
	w := new(big.Int).Sub(sh.EndingHashKey, sh.StartingHashKey)
	w.Add(w, big.NewInt(1))
	f, _ := new(big.Float).Quo(new(big.Float).SetInt(w), new(big.Float).SetInt(keySpace)).Float64()
	return f
}

// keySpace is 2^128, the size of the hash-key space.
var keySpace = new(big.Int).Lsh(big.NewInt(1), 128)

// adjacent reports whether b's hash range starts right after a's.
func adjacent(a, b Shard) bool {
	return new(big.Int).Add(a.EndingHashKey, big.NewInt(1)).Cmp(b.StartingHashKey) == 0
}

type pair struct {
	a, b Shard
	peak float64
}

// mergeLimit is the most a shard made by a merge may carry over the hold window, in shards: halfway from
// TargetUtilisation to ScaleUpUtilisation. A merge lowers the count only while the stream as a whole stays at
// TargetUtilisation (see mergePair), so one merged shard may run closer to the threshold than a resized stream;
// the hot-shard rule watches each shard on its own.
func (p *Policy) mergeLimit() float64 {
	return (p.cfg.TargetUtilisation + p.cfg.ScaleUpUtilisation) / 2
}

// mergePair returns the adjacent pair of ready shards (see shardWindow), not the two halves of one split, whose
// combined peak over the hold window is the highest below mergeLimit (the best fit), if the stream's peak over the
// window stays at most TargetUtilisation of one shard fewer.
func (p *Policy) mergePair(s *situation) *pair {
	c := p.cfg
	if s.n <= c.MinShards || s.hold.peak > c.TargetUtilisation*float64(s.n-1) {
		return nil
	}
	windows := p.windowsOf(s)
	var best *pair
	for i := 1; i < len(windows); i++ {
		a, b := windows[i-1], windows[i]
		if !a.ready || !b.ready || !adjacent(a.shard, b.shard) || siblings(a.shard, b.shard) {
			continue
		}
		peak := combinedPeak(a.byMinute, b.byMinute)
		if peak < p.mergeLimit() && (best == nil || peak > best.peak) {
			best = &pair{a: a.shard, b: b.shard, peak: peak}
		}
	}
	return best
}

// carve is rule 7: when three adjacent ready shards carry together less than two shards' worth at mergeLimit
// (less carveMargin) but no two of them fit in one, split the middle one where its load divides so that each outer
// shard with the piece next to it carries half the three's load; rule 6 then merges the pieces into their
// neighbours, one shard fewer than before. This is how a hot key's shard is packed: its split leaves a cold half that fits with no
// neighbour as they are. The middle shard's load must be spread evenly (no denser than evenDensity times the
// stream's), as the split point is weighted by its load.
func (p *Policy) carve(s *situation) *Decision {
	c := p.cfg
	if s.n <= c.MinShards || s.n >= c.MaxShards || s.hold.peak > c.TargetUtilisation*float64(s.n-1) ||
		(p.coolingDown(s) && !rebalancing(s.in.History.LastActionKind)) {
		return nil
	}
	windows := p.windowsOf(s)
	var best []shardWindow
	for i := 2; i < len(windows); i++ {
		run := windows[i-2 : i+1]
		x, y, z := run[0], run[1], run[2]
		total := x.peak + y.peak + z.peak
		if !x.ready || !y.ready || !z.ready || !adjacent(x.shard, y.shard) || !adjacent(y.shard, z.shard) ||
			total >= 2*p.mergeLimit()*(1-carveMargin) || y.peak/width(y.shard) > evenDensity*s.hold.peak ||
			!splittable(y.shard, c.MaxShards) {
			continue
		}
		if best == nil || total < best[0].peak+best[1].peak+best[2].peak {
			best = run
		}
	}
	if best == nil {
		return nil
	}
	x, y, z := best[0], best[1], best[2]
	half := (x.peak + y.peak + z.peak) / 2
	// The piece of y next to the lighter outer shard fills it up to half.
	cut := (half - x.peak) / y.peak
	if z.peak < x.peak {
		cut = 1 - (half-z.peak)/y.peak
	}
	if cut < minCarve || cut > 1-minCarve {
		return nil
	}
	key := splitAt(y.shard, cut)
	d := s.decision()
	d.Action, d.Rule = ActionSplitShard, RuleCarve
	d.ShardID, d.NewStartingHashKey = y.shard.ID, key.String()
	d.TargetShardCount = s.n + 1
	d.Reason = fmt.Sprintf("shards %s, %s and %s peaked at %.0f%%, %.0f%% and %.0f%% of one shard over %d minutes, %.0f%% together: splitting %s at %.0f%% of its hash range (weighted by its load) so that two merges leave two shards at %.0f%% each",
		x.shard.ID, y.shard.ID, z.shard.ID, 100*x.peak, 100*y.peak, 100*z.peak, c.ScaleDownMinutes, 200*half, y.shard.ID, 100*cut, 100*half)
	return &d
}

// siblings reports whether a and b are the two halves of one split. They are never merged back: the split was made
// for a hot shard or a carve, and undoing it would only make it again.
func siblings(a, b Shard) bool {
	return a.ParentShardID != "" && a.ParentShardID == b.ParentShardID && a.AdjacentParentShardID == "" && b.AdjacentParentShardID == ""
}

// rebalancing reports whether an action of this kind may be followed by a merge or carve without the cool-down:
// a merge or split continues the reshaping that it started.
func rebalancing(kind Action) bool {
	return kind == ActionMergeShards || kind == ActionSplitShard
}

// splitAt returns the hash key at share f of sh's range from its start, within (start, end].
func splitAt(sh Shard, f float64) *big.Int {
	w := new(big.Int).Sub(sh.EndingHashKey, sh.StartingHashKey)
	off, _ := new(big.Float).Mul(new(big.Float).SetInt(w), big.NewFloat(f)).Int(nil)
	key := off.Add(off, sh.StartingHashKey)
	if key.Cmp(sh.StartingHashKey) <= 0 {
		key.Add(sh.StartingHashKey, big.NewInt(1))
	}
	return key
}

// merge is a decision to merge the pair m.
func (p *Policy) merge(s *situation, m *pair, reason string) *Decision {
	d := s.decision()
	d.Action, d.Rule = ActionMergeShards, RuleMergeShards
	d.ShardID, d.AdjacentShardID = m.a.ID, m.b.ID
	d.TargetShardCount = s.n - 1
	d.Reason = fmt.Sprintf("%s: %s and %s peaked at %.1f%% of one shard together over %d minutes (below %.1f%%); merging them",
		reason, m.a.ID, m.b.ID, 100*m.peak, p.cfg.ScaleDownMinutes, 100*p.mergeLimit())
	return &d
}

func cmpKey(a, b *big.Int) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return cmp.Compare(a.Cmp(b), 0)
}

// combinedPeak is the largest per-minute sum of two shards' loads. A minute one shard has no datapoint for counts
// that shard at its own peak, so missing data never makes a pair look colder.
func combinedPeak(a, b map[time.Time]float64) float64 {
	peakOf := func(m map[time.Time]float64) float64 {
		p := 0.0
		for _, v := range m {
			p = max(p, v)
		}
		return p
	}
	pa, pb := peakOf(a), peakOf(b)
	peak := 0.0
	for t, la := range a {
		lb, ok := b[t]
		if !ok {
			lb = pb
		}
		peak = max(peak, la+lb)
	}
	for t, lb := range b {
		if _, ok := a[t]; !ok {
			peak = max(peak, pa+lb)
		}
	}
	return peak
}
