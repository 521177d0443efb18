package policy

import (
	"math"
	"slices"
	"time"
)

// A scale-up is decided on minutes CloudWatch published a while ago and takes effect only once Kinesis has
// resharded, so on a rising load it must be sized, and on a ramp also triggered, for the load of minutes that no
// datapoint shows yet. This file predicts that load from the newest minutes.

// growth is how fast the load rises at the end of a series.
type growth struct {
	// perMinute is the rise in shards per minute; 0 when the load is not rising.
	perMinute float64
	// confirmed is true when several consecutive minutes rose (a ramp); false when only the newest minute jumped
	// above the band of the minutes before it (the onset of a ramp, or a step).
	confirmed bool
}

// Windows the growth estimate reads.
const (
	// rampMinutes is how many newest minutes a ramp is fitted over.
	rampMinutes = 6
	// rampSignificance is how many standard errors a fitted slope must be above zero to be a ramp.
	rampSignificance = 3
	// bandMinutes is how many minutes before the newest one give the noise band an onset must leave.
	bandMinutes = 10
	// minBandSpread is the narrowest noise band, as a share of its highest minute.
	minBandSpread = 0.05
)

// growth estimates the rise of the load at the end of s. A ramp is confirmed when at least four of the last
// rampMinutes minutes are known and the least-squares slope over them is positive, significant (above
// rampSignificance times its standard error, which noise alone seldom reaches) and agreed by the median rise between
// consecutive minutes (which ignores a single jump); the smaller of the two is the rise. The newest minute is an
// onset when it exceeds the highest of the bandMinutes before it by more than their spread (highest minus lowest),
// which noise alone cannot do; its rise is its jump over the minute before, and it counts when it is steeper than
// the ramp.
func (s series) growth() growth {
	ramp := s.ramp()
	// A ramp that starts in the newest minute shows as an onset steeper than the slope fitted over the flat
	// minutes before it.
	if o := s.onset(); o.perMinute > ramp.perMinute {
		return o
	}
	return ramp
}

// ramp is the confirmed part of growth.
func (s series) ramp() growth {
	tail := s
	for len(tail) > 0 && s[len(s)-1].Start.Sub(tail[0].Start) >= rampMinutes*time.Minute {
		tail = tail[1:]
	}
	if len(tail) < 4 {
		return growth{}
	}
	var rises []float64
	for i := 1; i < len(tail); i++ {
		if tail[i].Start.Sub(tail[i-1].Start) == time.Minute {
			rises = append(rises, load(tail[i])-load(tail[i-1]))
		}
	}
	slope, stdErr := leastSquaresSlope(tail)
	if len(rises) < 3 || slope <= rampSignificance*stdErr {
		return growth{}
	}
	slices.Sort(rises)
	if rise := min(rises[len(rises)/2], slope); rise > 0 {
		return growth{perMinute: rise, confirmed: true}
	}
	return growth{}
}

// onset is the growth when the newest minute leaves the noise band of the bandMinutes before it (see growth).
func (s series) onset() growth {
	if len(s) < 3 {
		return growth{}
	}
	newest, prev := s[len(s)-1], s[len(s)-2]
	if newest.Start.Sub(prev.Start) != time.Minute {
		return growth{}
	}
	// The band is the known minutes of the bandMinutes before the newest; most of them must be known to tell
	// noise from growth.
	band := s[max(0, len(s)-1-bandMinutes) : len(s)-1]
	for len(band) > 0 && newest.Start.Sub(band[0].Start) > bandMinutes*time.Minute {
		band = band[1:]
	}
	if len(band) < bandMinutes-2 {
		return growth{}
	}
	high, low := band.peakLoad(), band.lowestLoad()
	// Real load is never flat: a band narrower than minBandSpread of its top is taken as that wide.
	spread := max(high-low, minBandSpread*high)
	if jump := load(newest) - load(prev); load(newest) > high+spread && jump > 0 {
		return growth{perMinute: jump}
	}
	return growth{}
}

// leastSquaresSlope is the fitted per-minute change of load over the minutes of s, and its standard error.
func leastSquaresSlope(s series) (slope, stdErr float64) {
	n := float64(len(s))
	var mx, my float64
	for _, m := range s {
		mx += m.Start.Sub(s[0].Start).Minutes() / n
		my += load(m) / n
	}
	var sxx, sxy float64
	for _, m := range s {
		dx := m.Start.Sub(s[0].Start).Minutes() - mx
		sxx += dx * dx
		sxy += dx * (load(m) - my)
	}
	if sxx == 0 || len(s) < 3 {
		return 0, math.Inf(1)
	}
	slope = sxy / sxx
	var residuals float64
	for _, m := range s {
		r := load(m) - my - slope*(m.Start.Sub(s[0].Start).Minutes()-mx)
		residuals += r * r
	}
	return slope, math.Sqrt(residuals / (n - 2) / sxx)
}

// leadTime is how far beyond the middle of the newest known minute lies the minute that a scale-up decided now
// would carry and one decided at the next run (a minute later) would not: the age of that minute's datapoint, the
// resharding, and half a minute.
func (p *Policy) leadTime(now time.Time, newest Minute) time.Duration {
	age := now.Sub(newest.Start.Add(30 * time.Second))
	return max(0, age) + p.cfg.ReshardDuration + 30*time.Second
}

// loadIn is the load expected ahead after the middle of the newest known minute of s, at growth g.
func loadIn(s series, g growth, ahead time.Duration) float64 {
	return load(s[len(s)-1]) + g.perMinute*ahead.Minutes()
}

// projectedLoad is the load a scale-up is sized for: the highest load of the last rampMinutes minutes, or, when the
// load rises, the load predicted for the end of the lead time (see leadTime) plus GrowthHorizon, so that a ramp costs
// few calls. An onset counts only when onsets is true (the trend rule acted on it), and is then extrapolated over
// the lead time only: one minute's jump does not yet show how long the rise lasts.
func (p *Policy) projectedLoad(s *situation, onsets bool) float64 {
	tail := s.stream
	if len(tail) > rampMinutes {
		tail = tail[len(tail)-rampMinutes:]
	}
	peak := tail.peakLoad()
	g := s.stream.growth()
	switch {
	case g.confirmed:
		ahead := p.leadTime(s.in.Now, s.stream[len(s.stream)-1]) + p.cfg.GrowthHorizon
		return max(peak, loadIn(s.stream, g, ahead))
	case onsets && g.perMinute > 0:
		return max(peak, loadIn(s.stream, g, p.leadTime(s.in.Now, s.stream[len(s.stream)-1])))
	}
	return peak
}
