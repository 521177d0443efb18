package telemetry

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Unit is a CloudWatch metric unit.
type Unit string

// CloudWatch units used by the services.
const (
	UnitCount        Unit = "Count"
	UnitBytes        Unit = "Bytes"
	UnitMilliseconds Unit = "Milliseconds"
	UnitSeconds      Unit = "Seconds"
	UnitPercent      Unit = "Percent"
	UnitNone         Unit = "None"
)

// Limits of the embedded metric format and of CloudWatch.
const (
	// MaxDimensions is the most dimensions one metric may carry in CloudWatch.
	MaxDimensions = 30
	// maxValuesPerMetric is the most values one EMF metric member may hold.
	maxValuesPerMetric = 100
	// maxMetricsPerDirective is the most metrics one EMF directive may name.
	maxMetricsPerDirective = 100
)

// Defaults of MetricsConfig.
const (
	DefaultNamespace     = "StreamProc"
	DefaultFlushInterval = time.Minute
)

// Dimension is one CloudWatch dimension (name and value).
type Dimension struct {
	// Name is the dimension's name, such as "StreamName".
	Name string
	// Value is the value the metrics are filed under, such as the stream's name.
	Value string
}

// MetricsConfig configures a Metrics writer. The zero value is usable.
type MetricsConfig struct {
	// Namespace is the CloudWatch namespace of every metric. Default: DefaultNamespace.
	Namespace string
	// Dimensions are added to every metric (for example the service name and the stream).
	// Default: none.
	Dimensions []Dimension
	// FlushInterval is how often Run writes the aggregated metrics. Default: DefaultFlushInterval.
	FlushInterval time.Duration
}

// Metrics aggregates counters and observations in memory and writes them as CloudWatch
// embedded-metric-format JSON lines, one line per dimension set, on Flush.
//
// Counters (Add) are summed over the interval; a counter once seen is written every interval,
// as 0 when nothing happened, so alarms see data instead of gaps. Observations (Observe) keep
// every value when there are at most 100 in the interval, else the minimum, the maximum and a
// uniform random sample of 98 others (EMF allows at most 100 values per metric and line): their
// averages and percentiles are estimates and their SampleCount is not the number of events,
// so count events with a counter. Metrics is safe for concurrent use.
type Metrics struct {
	w         io.Writer
	namespace string
	fixed     []Dimension
	interval  time.Duration

	mu   sync.Mutex
	sets map[string]*dimensionSet
}

type dimensionSet struct {
	dims         []Dimension
	counters     map[string]*counter
	observations map[string]*observation
}

type counter struct {
	unit Unit
	sum  float64
}

type observation struct {
	unit     Unit
	n        int64
	min, max float64
	values   []float64
}

// NewMetrics returns a writer of EMF lines to w (usually os.Stdout, next to the JSON logs).
func NewMetrics(w io.Writer, cfg MetricsConfig) (*Metrics, error) {
	if w == nil {
		return nil, errors.New("telemetry: metrics writer is nil")
	}
	cfg.Namespace = cmp.Or(cfg.Namespace, DefaultNamespace)
	if len(cfg.Namespace) > 255 || strings.HasPrefix(cfg.Namespace, ":") {
		return nil, fmt.Errorf("telemetry: namespace %q: want 1-255 characters not starting with ':'", cfg.Namespace)
	}
	if cfg.FlushInterval < 0 {
		return nil, fmt.Errorf("telemetry: flush interval %v: want > 0 (or 0 for the default %v)", cfg.FlushInterval, DefaultFlushInterval)
	}
	cfg.FlushInterval = cmp.Or(cfg.FlushInterval, DefaultFlushInterval)
	if len(cfg.Dimensions) > MaxDimensions {
		return nil, fmt.Errorf("telemetry: %d dimensions: want at most %d", len(cfg.Dimensions), MaxDimensions)
	}
	for _, d := range cfg.Dimensions {
		if err := validDimension(d); err != nil {
			return nil, err
		}
	}
	return &Metrics{
		w:         w,
		namespace: cfg.Namespace,
		fixed:     slices.Clone(cfg.Dimensions),
		interval:  cfg.FlushInterval,
		sets:      make(map[string]*dimensionSet),
	}, nil
}

func validDimension(d Dimension) error {
	if d.Name == "" || len(d.Name) > 255 || d.Name == "_aws" {
		return fmt.Errorf("telemetry: dimension name %q: want 1-255 characters, not _aws", d.Name)
	}
	if d.Value == "" || len(d.Value) > 1024 {
		return fmt.Errorf("telemetry: dimension %s value %q: want 1-1024 characters", d.Name, d.Value)
	}
	return nil
}

// Add adds value to the counter name (with the fixed dimensions plus dims). Values that are
// NaN or infinite, and dimension sets CloudWatch would reject, are ignored: metrics must
// never break the service that emits them.
func (m *Metrics) Add(name string, unit Unit, value float64, dims ...Dimension) {
	if name == "" || math.IsNaN(value) || math.IsInf(value, 0) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.setLocked(dims)
	if set == nil {
		return
	}
	c := set.counters[name]
	if c == nil {
		c = &counter{unit: unit}
		set.counters[name] = c
	}
	c.sum += value
}

// Observe records one value of the distribution name (with the fixed dimensions plus dims).
// Invalid values and dimension sets are ignored, as in Add.
func (m *Metrics) Observe(name string, unit Unit, value float64, dims ...Dimension) {
	if name == "" || math.IsNaN(value) || math.IsInf(value, 0) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.setLocked(dims)
	if set == nil {
		return
	}
	o := set.observations[name]
	if o == nil {
		o = &observation{unit: unit, min: value, max: value, values: make([]float64, 0, maxValuesPerMetric)}
		set.observations[name] = o
	}
	o.n++
	o.min = min(o.min, value)
	o.max = max(o.max, value)
	if len(o.values) < maxValuesPerMetric {
		o.values = append(o.values, value)
		return
	}
	// Reservoir sampling: every value seen so far has the same chance to be kept.
	if j := rand.Int64N(o.n); j < maxValuesPerMetric {
		o.values[j] = value
	}
}

// setLocked returns the dimension set for dims, creating it; nil when dims are invalid.
func (m *Metrics) setLocked(dims []Dimension) *dimensionSet {
	var key string
	if len(dims) > 0 {
		var b strings.Builder
		for _, d := range dims {
			b.WriteString(d.Name)
			b.WriteByte(0)
			b.WriteString(d.Value)
			b.WriteByte(0)
		}
		key = b.String()
	}
	if set := m.sets[key]; set != nil {
		return set
	}
	if len(m.fixed)+len(dims) > MaxDimensions {
		return nil
	}
	all := slices.Clone(m.fixed)
	for _, d := range dims {
		if validDimension(d) != nil || slices.ContainsFunc(all, func(o Dimension) bool { return o.Name == d.Name }) {
			return nil
		}
		all = append(all, d)
	}
	set := &dimensionSet{dims: all, counters: make(map[string]*counter), observations: make(map[string]*observation)}
	m.sets[key] = set
	return set
}

// Flush writes one EMF line per dimension set that has metrics and starts a new interval.
func (m *Metrics) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.sets))
	for k := range m.sets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	now := time.Now().UnixMilli()
	var buf bytes.Buffer
	for _, k := range keys {
		lines, err := m.sets[k].encode(m.namespace, now)
		if err != nil {
			return fmt.Errorf("telemetry: encode metrics: %w", err)
		}
		for _, l := range lines {
			buf.Write(l)
			buf.WriteByte('\n')
		}
		m.sets[k].reset()
	}
	if buf.Len() == 0 {
		return nil
	}
	if _, err := m.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("telemetry: write metrics: %w", err)
	}
	return nil
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit,omitempty"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMetadata struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// encode returns the EMF lines of the set (more than one only past 100 metrics).
func (s *dimensionSet) encode(namespace string, timestamp int64) ([][]byte, error) {
	names := make([]string, 0, len(s.counters)+len(s.observations))
	for n := range s.counters {
		names = append(names, n)
	}
	for n, o := range s.observations {
		if o.n > 0 {
			if _, dup := s.counters[n]; !dup {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	dimNames := make([]string, len(s.dims))
	for i, d := range s.dims {
		dimNames[i] = d.Name
	}
	var lines [][]byte
	for start := 0; start < len(names); start += maxMetricsPerDirective {
		chunk := names[start:min(start+maxMetricsPerDirective, len(names))]
		doc := make(map[string]any, len(s.dims)+len(chunk)+1)
		for _, d := range s.dims {
			doc[d.Name] = d.Value
		}
		directive := emfDirective{Namespace: namespace, Dimensions: [][]string{dimNames}}
		for _, n := range chunk {
			if c, ok := s.counters[n]; ok {
				directive.Metrics = append(directive.Metrics, emfMetric{Name: n, Unit: c.unit})
				doc[n] = c.sum
				continue
			}
			o := s.observations[n]
			directive.Metrics = append(directive.Metrics, emfMetric{Name: n, Unit: o.unit})
			doc[n] = o.sample()
		}
		doc["_aws"] = emfMetadata{Timestamp: timestamp, CloudWatchMetrics: []emfDirective{directive}}
		line, err := json.Marshal(doc)
		if err != nil {
			return nil, err
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// sample returns the values to write: all of them, or min, max and 98 sampled others.
func (o *observation) sample() []float64 {
	if o.n <= maxValuesPerMetric {
		return slices.Clone(o.values)
	}
	out := make([]float64, 0, maxValuesPerMetric)
	out = append(out, o.min, o.max)
	return append(out, o.values[:maxValuesPerMetric-2]...)
}

func (s *dimensionSet) reset() {
	for _, c := range s.counters {
		c.sum = 0
	}
	for _, o := range s.observations {
		o.n = 0
		o.values = o.values[:0]
	}
}

// Run flushes every FlushInterval until ctx is done, then flushes once more and returns
// the error of that last flush. An interval whose write fails is lost: metrics never hold
// the service back.
func (m *Metrics) Run(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return m.Flush()
		case <-t.C:
			_ = m.Flush()
		}
	}
}
