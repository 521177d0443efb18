package telemetry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// emfLine is one decoded EMF line.
type emfLine map[string]any

func parseLines(t *testing.T, out string) []emfLine {
	t.Helper()
	var lines []emfLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l emfLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// directive returns the line's only CloudWatchMetrics directive, checking the EMF structure.
func directive(t *testing.T, l emfLine) (namespace string, dims []string, metrics map[string]string) {
	t.Helper()
	aws, ok := l["_aws"].(map[string]any)
	if !ok {
		t.Fatalf("no _aws member in %v", l)
	}
	if _, ok := aws["Timestamp"].(float64); !ok {
		t.Fatalf("no numeric Timestamp in %v", aws)
	}
	ds := aws["CloudWatchMetrics"].([]any)
	if len(ds) != 1 {
		t.Fatalf("want 1 directive, got %d", len(ds))
	}
	d := ds[0].(map[string]any)
	for _, n := range d["Dimensions"].([]any)[0].([]any) {
		dims = append(dims, n.(string))
		if _, ok := l[n.(string)].(string); !ok {
			t.Fatalf("dimension %v has no string member in %v", n, l)
		}
	}
	metrics = map[string]string{}
	for _, m := range d["Metrics"].([]any) {
		mm := m.(map[string]any)
		metrics[mm["Name"].(string)] = mm["Unit"].(string)
		if _, ok := l[mm["Name"].(string)]; !ok {
			t.Fatalf("metric %v has no member in %v", mm["Name"], l)
		}
	}
	return d["Namespace"].(string), dims, metrics
}

func TestMetricsFlush(t *testing.T) {
	var out bytes.Buffer
	m, err := NewMetrics(&out, MetricsConfig{Namespace: "Test", Dimensions: []Dimension{{"Service", "producer"}}})
	if err != nil {
		t.Fatal(err)
	}
	m.Add("Put", UnitCount, 2)
	m.Add("Put", UnitCount, 3)
	m.Add("ErrorsByCode", UnitCount, 1, Dimension{"ErrorCode", "Throttled"})
	m.Add("ErrorsByCode", UnitCount, 4, Dimension{"ErrorCode", "Throttled"})
	m.Add("ErrorsByCode", UnitCount, 1, Dimension{"ErrorCode", "InternalFailure"})
	m.Observe("Latency", UnitMilliseconds, 5)
	m.Observe("Latency", UnitMilliseconds, 7)
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, out.String())
	if len(lines) != 3 {
		t.Fatalf("want 3 lines (one per dimension set), got %d:\n%s", len(lines), out.String())
	}
	got := map[string]emfLine{}
	for _, l := range lines {
		ns, dims, metrics := directive(t, l)
		if ns != "Test" {
			t.Errorf("namespace %q", ns)
		}
		if dims[0] != "Service" || l["Service"] != "producer" {
			t.Errorf("fixed dimension missing: %v", l)
		}
		key := strings.Join(dims, ",")
		if code, ok := l["ErrorCode"].(string); ok {
			key += "=" + code
			if metrics["ErrorsByCode"] != "Count" {
				t.Errorf("ErrorsByCode unit: %v", metrics)
			}
		}
		got[key] = l
	}
	tests := map[string]struct {
		key, metric string
		want        any
	}{
		"counter summed":        {"Service", "Put", 5.0},
		"observation values":    {"Service", "Latency", []any{5.0, 7.0}},
		"per-dimension counter": {"Service,ErrorCode=Throttled", "ErrorsByCode", 5.0},
		"other dimension value": {"Service,ErrorCode=InternalFailure", "ErrorsByCode", 1.0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l, ok := got[tc.key]
			if !ok {
				t.Fatalf("no line for %s", tc.key)
			}
			b1, _ := json.Marshal(l[tc.metric])
			b2, _ := json.Marshal(tc.want)
			if string(b1) != string(b2) {
				t.Errorf("%s = %s, want %s", tc.metric, b1, b2)
			}
		})
	}

	// Next interval: counters seen before are written as 0, observations without values are not.
	out.Reset()
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, l := range parseLines(t, out.String()) {
		_, _, metrics := directive(t, l)
		if _, ok := metrics["Latency"]; ok {
			t.Errorf("empty observation written: %v", l)
		}
		for name := range metrics {
			if l[name] != 0.0 {
				t.Errorf("counter %s = %v after an empty interval, want 0", name, l[name])
			}
		}
	}
}

func TestMetricsObservationSample(t *testing.T) {
	var out bytes.Buffer
	m, err := NewMetrics(&out, MetricsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10000 {
		m.Observe("Size", UnitBytes, float64(i))
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, out.String())
	if len(lines) != 1 {
		t.Fatalf("want 1 line, got %d", len(lines))
	}
	ns, _, _ := directive(t, lines[0])
	if ns != DefaultNamespace {
		t.Errorf("namespace %q, want default %q", ns, DefaultNamespace)
	}
	values := lines[0]["Size"].([]any)
	if len(values) != 100 {
		t.Fatalf("want 100 values (EMF maximum), got %d", len(values))
	}
	if values[0] != 0.0 || values[1] != 9999.0 {
		t.Errorf("min/max not kept first: %v %v", values[0], values[1])
	}
	var sum float64
	for _, v := range values[2:] {
		sum += v.(float64)
	}
	// The sample's mean estimates 4999.5; a uniform sample of 98 is far inside +-2000.
	if mean := sum / 98; mean < 3000 || mean > 7000 {
		t.Errorf("sample mean %v is not a uniform sample of 0..9999", mean)
	}
}

func TestMetricsManyMetricsSplitLines(t *testing.T) {
	var out bytes.Buffer
	m, err := NewMetrics(&out, MetricsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		m.Add("M"+strings.Repeat("x", i), UnitCount, 1)
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, out.String())
	if len(lines) != 2 {
		t.Fatalf("150 metrics: want 2 lines of at most 100, got %d", len(lines))
	}
	total := 0
	for _, l := range lines {
		_, _, metrics := directive(t, l)
		if len(metrics) > 100 {
			t.Errorf("%d metrics in one directive", len(metrics))
		}
		total += len(metrics)
	}
	if total != 150 {
		t.Errorf("wrote %d metrics, want 150", total)
	}
}

func TestMetricsIgnoresInvalid(t *testing.T) {
	var out bytes.Buffer
	m, err := NewMetrics(&out, MetricsConfig{Dimensions: []Dimension{{"Service", "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	nan := 0.0
	nan /= nan
	tests := map[string]func(){
		"NaN":                func() { m.Add("A", UnitCount, nan) },
		"empty name":         func() { m.Add("", UnitCount, 1) },
		"empty dim value":    func() { m.Add("A", UnitCount, 1, Dimension{"D", ""}) },
		"duplicate dim name": func() { m.Observe("A", UnitCount, 1, Dimension{"Service", "y"}) },
		"too many dims": func() {
			dims := make([]Dimension, MaxDimensions)
			for i := range dims {
				dims[i] = Dimension{Name: "D" + strings.Repeat("d", i), Value: "v"}
			}
			m.Add("A", UnitCount, 1, dims...)
		},
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			out.Reset()
			f()
			if err := m.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.Len() != 0 {
				t.Errorf("invalid input was written: %s", out.String())
			}
		})
	}
}

func TestNewMetricsValidates(t *testing.T) {
	tests := map[string]MetricsConfig{
		"negative interval": {FlushInterval: -time.Second},
		"namespace colon":   {Namespace: ":x"},
		"long namespace":    {Namespace: strings.Repeat("n", 256)},
		"empty dim name":    {Dimensions: []Dimension{{"", "v"}}},
		"empty dim value":   {Dimensions: []Dimension{{"n", ""}}},
		"reserved dim name": {Dimensions: []Dimension{{"_aws", "v"}}},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := NewMetrics(&bytes.Buffer{}, cfg); err == nil {
				t.Errorf("config %+v accepted", cfg)
			}
		})
	}
	if _, err := NewMetrics(nil, MetricsConfig{}); err == nil {
		t.Error("nil writer accepted")
	}
}

func TestMetricsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out SyncBuffer
		m, err := NewMetrics(&out, MetricsConfig{FlushInterval: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()

		m.Add("Put", UnitCount, 1)
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if out.String() != "" {
			t.Fatalf("flushed before the interval: %s", out.String())
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := len(parseLines(t, out.String())); n != 1 {
			t.Fatalf("after one interval: %d lines, want 1", n)
		}
		m.Add("Put", UnitCount, 7)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		lines := parseLines(t, out.String())
		if len(lines) != 2 || lines[1]["Put"] != 7.0 {
			t.Fatalf("final flush on cancel missing: %s", out.String())
		}
	})
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestMetricsFlushWriteError(t *testing.T) {
	m, err := NewMetrics(failingWriter{}, MetricsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m.Add("A", UnitCount, 1)
	if err := m.Flush(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Flush error = %v, want the write error", err)
	}
}
