package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
	"github.com/streamproc/streamproc/services/ingest"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/kpl"
)

// The local dashboard is the CloudWatch dashboard's twin: it draws the same EMF metric lines and autoscaler
// decision lines the services write (on AWS, CloudWatch extracts its metrics from those very lines), read from the
// services' logs, so no second metrics path can disagree with the real one.

//go:embed web
var webFiles embed.FS

// dashboardWindow is how much history the page shows.
const dashboardWindow = 15 * time.Minute

// kclMetrics are the worker's own metrics; any other metric in a worker's log is its processor's (MultiLang, sink).
var kclMetrics = []string{kcl.MetricRecordsProcessed, kcl.MetricBytesProcessed, kcl.MetricMillisBehindLatest,
	kcl.MetricCurrentLeases, kcl.MetricLeasesTaken, kcl.MetricLeasesLost, kcl.MetricLeasesCleanedUp,
	kcl.MetricProcessingErrors, kcl.MetricRecordsOutsideShardRange}

// emfLine is one EMF line: when it was written, and each metric's values (one for a counter, one per observation
// for a distribution).
type emfLine struct {
	At     time.Time
	Values map[string][]float64
}

// parseEMF reads an EMF line; ok is false for any other line (logs, records).
func parseEMF(line []byte) (emfLine, bool) {
	if !bytes.Contains(line, []byte(`"_aws"`)) {
		return emfLine{}, false
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(line, &doc) != nil {
		return emfLine{}, false
	}
	var meta struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Metrics []struct {
				Name string `json:"Name"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	}
	if json.Unmarshal(doc["_aws"], &meta) != nil || meta.Timestamp == 0 {
		return emfLine{}, false
	}
	l := emfLine{At: time.UnixMilli(meta.Timestamp), Values: map[string][]float64{}}
	for _, d := range meta.CloudWatchMetrics {
		for _, m := range d.Metrics {
			var one float64
			var many []float64
			switch {
			case json.Unmarshal(doc[m.Name], &one) == nil:
				l.Values[m.Name] = []float64{one}
			case json.Unmarshal(doc[m.Name], &many) == nil:
				l.Values[m.Name] = many
			}
		}
	}
	return l, len(l.Values) > 0
}

// dashboardSource is one log the dashboard reads: its EMF lines of the last dashboardWindow, and its counters'
// totals since the pipeline started.
type dashboardSource struct {
	name   string
	tail   lineTail
	lines  []emfLine
	totals map[string]float64
}

// add keeps an EMF line and adds its values to the totals.
func (s *dashboardSource) add(l emfLine) {
	s.lines = append(s.lines, l)
	if s.totals == nil {
		s.totals = map[string]float64{}
	}
	for name, v := range l.Values {
		for _, x := range v {
			s.totals[name] += x
		}
	}
}

// decisionLine is an autoscaler decision as its log line says it.
type decisionLine struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"`
	Action  string    `json:"action"`
	Reason  string    `json:"reason"`
	Current int       `json:"current_shard_count"`
	Target  int       `json:"target_shard_count"`
}

// dashboardCollector reads the services' logs for the page.
type dashboardCollector struct {
	logDir   string
	interval time.Duration
	shards   func(context.Context) (int, error)
	// started is when the pipeline started: the charts begin there until they hold dashboardWindow.
	started time.Time

	mu        sync.Mutex
	sources   map[string]*dashboardSource
	scaler    lineTail
	decisions []decisionLine
	shardAt   []point
}

// point is one value at a time, as the page draws it: [unix milliseconds, value].
type point [2]float64

// collect reads what the logs gained since the last call, and the stream's shard count now.
func (c *dashboardCollector) collect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	paths, err := filepath.Glob(filepath.Join(c.logDir, "*.log"))
	if err != nil {
		return err
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".log")
		if name != "producer" && !strings.HasPrefix(name, "consumer-") {
			continue
		}
		src := c.sources[name]
		if src == nil {
			src = &dashboardSource{name: name, tail: lineTail{path: path}}
			c.sources[name] = src
		}
		if err := src.tail.next(func(line []byte) {
			if l, ok := parseEMF(line); ok {
				src.add(l)
			}
		}); err != nil {
			return err
		}
	}
	c.scaler.path = filepath.Join(c.logDir, "autoscaler.log")
	if err := c.scaler.next(func(line []byte) {
		var d decisionLine
		if json.Unmarshal(line, &d) == nil && d.Msg == "scaling decision" {
			c.decisions = append(c.decisions, d)
			c.shardAt = append(c.shardAt, point{float64(d.Time.UnixMilli()), float64(d.Current)})
		}
	}); err != nil {
		return err
	}
	if n, err := c.shards(ctx); err == nil {
		c.shardAt = append(c.shardAt, point{float64(time.Now().UnixMilli()), float64(n)})
	}
	c.trimLocked(time.Now().Add(-dashboardWindow))
	return nil
}

// trimLocked drops what is older than since, keeping memory bounded however long the pipeline runs (the totals are
// kept apart).
func (c *dashboardCollector) trimLocked(since time.Time) {
	for _, src := range c.sources {
		i, _ := slices.BinarySearchFunc(src.lines, since, func(l emfLine, t time.Time) int { return l.At.Compare(t) })
		src.lines = slices.Delete(src.lines, 0, i)
	}
	cut := float64(since.UnixMilli())
	i, _ := slices.BinarySearchFunc(c.shardAt, cut, func(p point, t float64) int { return cmp.Compare(p[0], t) })
	c.shardAt = slices.Delete(c.shardAt, 0, i)
	for len(c.decisions) > 0 && c.decisions[0].Time.Before(since) {
		c.decisions = c.decisions[1:]
	}
}

// dashboardSnapshot is what the page draws.
type dashboardSnapshot struct {
	// From and Now bound the charts' time axis (unix milliseconds): the last dashboardWindow, or since the
	// pipeline started when that is later.
	From   int64            `json:"from"`
	Now    int64            `json:"now"`
	Totals dashboardTotals  `json:"totals"`
	Charts []dashboardChart `json:"charts"`
	Events []dashboardEvent `json:"events"`
}

// newSnapshot is a snapshot at now with no event yet (an empty list, not null, in the JSON).
func newSnapshot(now time.Time) dashboardSnapshot {
	return dashboardSnapshot{Now: now.UnixMilli(), Events: []dashboardEvent{}}
}

// dashboardTotals are the headline counts since the pipeline started.
type dashboardTotals struct {
	// RecordsIn is the user records the producer put (kpl.MetricUserRecordsPut): what clients had acknowledged.
	RecordsIn float64 `json:"recordsIn"`
	// KinesisRecordsIn is the aggregated Kinesis records they went in.
	KinesisRecordsIn float64 `json:"kinesisRecordsIn"`
	// RecordsProcessed is what the workers processed, re-deliveries included.
	RecordsProcessed float64 `json:"recordsProcessed"`
	// Workers is the number of consumer workers seen.
	Workers int `json:"workers"`
}

type dashboardChart struct {
	ID     string            `json:"id"`
	Title  string            `json:"title"`
	Unit   string            `json:"unit"`
	Series []dashboardSeries `json:"series"`
	// Markers shows the autoscaler's actions on the chart.
	Markers bool `json:"markers,omitempty"`
	// Empty is what the chart says while none of its series has a point.
	Empty string `json:"empty,omitempty"`
}

type dashboardSeries struct {
	Label string `json:"label"`
	// Points is never null in the JSON: a series without data is drawn as such.
	Points []point `json:"points"`
}

type dashboardEvent struct {
	At     int64  `json:"at"`
	Label  string `json:"label"`
	Reason string `json:"reason"`
}

// snapshot builds the page's charts from what was collected.
func (c *dashboardCollector) snapshot() dashboardSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := newSnapshot(time.Now())
	s.From = max(s.Now-dashboardWindow.Milliseconds(), c.started.UnixMilli())
	producer := c.sources["producer"]
	workers := c.workersLocked()
	s.Totals = c.totalsLocked(producer, workers)
	perSecond := 1 / c.interval.Seconds()
	s.Charts = []dashboardChart{
		{ID: "records-in", Title: "Records in per second", Unit: "records/s", Series: []dashboardSeries{
			sum(producer, "user records put", kpl.MetricUserRecordsPut, perSecond),
			sum(producer, "Kinesis records put (aggregated)", kpl.MetricKinesisRecordsPut, perSecond)}},
		{ID: "bytes-in", Title: "Bytes in per second", Unit: "bytes/s", Series: []dashboardSeries{
			sum(producer, "user record bytes", kpl.MetricUserRecordsDataPut, perSecond),
			sum(producer, "Kinesis record bytes", kpl.MetricKinesisRecordsDataPut, perSecond)}},
		{ID: "put-latency", Title: "Request latency", Unit: "ms", Series: []dashboardSeries{
			quantile(producer, "p50", ingest.RequestLatency, 0.5), quantile(producer, "p99", ingest.RequestLatency, 0.99)}},
		{ID: "refusals", Title: "Refused requests per second", Unit: "requests/s", Empty: "no request refused", Series: []dashboardSeries{
			sum(producer, "4xx", ingest.Requests4xx, perSecond), sum(producer, "5xx", ingest.Requests5xx, perSecond),
			sum(producer, "503 buffer full", ingest.RejectedBufferFull, perSecond)}},
		perWorker("processed", "Records processed per second, per worker", "records/s", workers, func(w *dashboardSource) dashboardSeries {
			return sum(w, w.name, kcl.MetricRecordsProcessed, perSecond)
		}),
		perWorker("behind", "Behind the stream's tip, per worker", "ms", workers, func(w *dashboardSource) dashboardSeries {
			return quantile(w, w.name, kcl.MetricMillisBehindLatest, 1)
		}),
		perWorker("leases", "Leases per worker", "leases", workers, func(w *dashboardSource) dashboardSeries {
			return quantile(w, w.name, kcl.MetricCurrentLeases, 1)
		}),
		{ID: "shards", Title: "Open shards and the autoscaler's actions", Unit: "shards", Markers: true,
			Series: []dashboardSeries{{Label: "open shards", Points: append([]point{}, c.shardAt...)}}},
	}
	if chart, ok := processorChart(workers, perSecond); ok {
		s.Charts = append(s.Charts, chart)
	}
	for _, d := range c.decisions {
		if d.Action != string(policy.ActionNone) {
			s.Events = append(s.Events, dashboardEvent{At: d.Time.UnixMilli(),
				Label: fmt.Sprintf("%s %d→%d", d.Action, d.Current, d.Target), Reason: d.Reason})
		}
	}
	return s
}

// workersLocked returns the consumer workers' sources, by name.
func (c *dashboardCollector) workersLocked() []*dashboardSource {
	var out []*dashboardSource
	for name, src := range c.sources {
		if strings.HasPrefix(name, "consumer-") {
			out = append(out, src)
		}
	}
	slices.SortFunc(out, func(a, b *dashboardSource) int { return strings.Compare(a.name, b.name) })
	return out
}

// totalsLocked adds up the counters since the pipeline started.
func (c *dashboardCollector) totalsLocked(producer *dashboardSource, workers []*dashboardSource) dashboardTotals {
	t := dashboardTotals{Workers: len(workers)}
	t.RecordsIn = total(producer, kpl.MetricUserRecordsPut)
	t.KinesisRecordsIn = total(producer, kpl.MetricKinesisRecordsPut)
	for _, w := range workers {
		t.RecordsProcessed += total(w, kcl.MetricRecordsProcessed)
	}
	return t
}

// processorChart draws the metrics of the workers' processors (MultiLang, sink): every metric in their logs that
// is not the worker's own, summed over the workers, per second. ok is false when there are none.
func processorChart(workers []*dashboardSource, perSecond float64) (dashboardChart, bool) {
	names := map[string]bool{}
	for _, w := range workers {
		for _, l := range w.lines {
			for name := range l.Values {
				if !slices.Contains(kclMetrics, name) {
					names[name] = true
				}
			}
		}
	}
	if len(names) == 0 {
		return dashboardChart{}, false
	}
	chart := dashboardChart{ID: "processor", Title: "The processor's own metrics, all workers", Unit: "per second (times: ms)"}
	merged := &dashboardSource{lines: mergeLines(workers)}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if strings.HasSuffix(name, "Time") || strings.HasSuffix(name, "Latency") {
			chart.Series = append(chart.Series, quantile(merged, name+" p50", name, 0.5))
			continue
		}
		chart.Series = append(chart.Series, sum(merged, name, name, perSecond))
	}
	return chart, true
}

// mergeLines puts the lines of several sources in time order.
func mergeLines(sources []*dashboardSource) []emfLine {
	var all []emfLine
	for _, s := range sources {
		all = append(all, s.lines...)
	}
	slices.SortStableFunc(all, func(a, b emfLine) int { return a.At.Compare(b.At) })
	return all
}

// perWorker is a chart with one series per worker.
func perWorker(id, title, unit string, workers []*dashboardSource, series func(*dashboardSource) dashboardSeries) dashboardChart {
	c := dashboardChart{ID: id, Title: title, Unit: unit}
	for _, w := range workers {
		c.Series = append(c.Series, series(w))
	}
	return c
}

// sum is a counter's value at each line, times scale (1/interval: a rate per second).
func sum(src *dashboardSource, label, metric string, scale float64) dashboardSeries {
	s := dashboardSeries{Label: label, Points: []point{}}
	if src == nil {
		return s
	}
	for _, l := range src.lines {
		if v, ok := l.Values[metric]; ok {
			total := 0.0
			for _, x := range v {
				total += x
			}
			s.Points = append(s.Points, point{float64(l.At.UnixMilli()), total * scale})
		}
	}
	return s
}

// quantile is a distribution's q-quantile at each line (1: its maximum).
func quantile(src *dashboardSource, label, metric string, q float64) dashboardSeries {
	s := dashboardSeries{Label: label, Points: []point{}}
	if src == nil {
		return s
	}
	for _, l := range src.lines {
		v, ok := l.Values[metric]
		if !ok || len(v) == 0 {
			continue
		}
		sorted := slices.Sorted(slices.Values(v))
		i := min(len(sorted)-1, int(math.Ceil(q*float64(len(sorted))))-1)
		s.Points = append(s.Points, point{float64(l.At.UnixMilli()), sorted[max(i, 0)]})
	}
	return s
}

// total is a counter's total since the pipeline started.
func total(src *dashboardSource, metric string) float64 {
	if src == nil {
		return 0
	}
	return src.totals[metric]
}

// DashboardHandler serves the local dashboard: the page, its script and styles, and /api/snapshot, the figures it
// draws, read from the services' logs at each request.
func (p *Pipeline) DashboardHandler() http.Handler {
	c := &dashboardCollector{logDir: p.logDir, interval: p.cfg.MetricsInterval, sources: map[string]*dashboardSource{},
		shards: p.openShards, started: p.started}
	web, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(web))
	mux.HandleFunc("GET /api/snapshot", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := c.collect(ctx); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(c.snapshot())
	})
	return mux
}
