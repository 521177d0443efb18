package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

func TestChartFile(t *testing.T) {
	tests := map[string]string{
		"2x step":                   "2x-step.svg",
		"bursty day, 25 KB records": "bursty-day-25-kb-records.svg",
		"10x ramp over 1h":          "10x-ramp-over-1h.svg",
	}
	for trace, want := range tests {
		t.Run(trace, func(t *testing.T) {
			if got := chartFile(trace); got != want {
				t.Fatalf("chartFile(%q) = %q, want %q", trace, got, want)
			}
		})
	}
}

// TestWriteChartsWritesOneSVGPerTrace replays two short traces, one throttling, and checks each gets its chart: an
// SVG file with the trace in its title and a line per series.
func TestWriteChartsWritesOneSVGPerTrace(t *testing.T) {
	t.Parallel()
	// GIVEN two 90-minute traces replayed through the policy and Scaling Utils
	traces := []Trace{
		flat(90, 2048, false, func(int) float64 { return 2 }),
		flat(90, 2048, false, func(t int) float64 { return map[bool]float64{true: 1, false: 3}[t < 60] }),
	}
	traces[0].Name, traces[1].Name, traces[1].StartShards = "steady two", "a step to three", 2
	p, err := policy.New(policy.Config{MaxShards: 16})
	if err != nil {
		t.Fatal(err)
	}
	var rows []Row
	for _, tr := range traces {
		row, err := Simulate(tr, p, Settings{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if rows[1].Policy.ThrottledMinutes == 0 {
		t.Fatalf("the step trace did not throttle: nothing to mark")
	}
	// WHEN the charts are written
	dir := filepath.Join(t.TempDir(), "charts")
	if err := writeCharts(dir, traces, rows, Settings{}); err != nil {
		t.Fatal(err)
	}
	// THEN each trace has a non-empty SVG naming it, with the load, both capacities and the throttled marks
	for i, tr := range traces {
		b, err := os.ReadFile(filepath.Join(dir, chartFile(tr.Name)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte(tr.Name)) {
			t.Errorf("%s: not an SVG naming the trace (%d bytes)", tr.Name, len(b))
		}
		for _, label := range []string{"load", "autoscaler capacity", "Scaling Utils capacity"} {
			if !bytes.Contains(b, []byte(label)) {
				t.Errorf("%s: legend lacks %q", tr.Name, label)
			}
		}
		if marked := bytes.Contains(b, []byte("autoscaler throttled minute")); marked != (rows[i].Policy.ThrottledMinutes > 0) {
			t.Errorf("%s: throttled minutes marked %v, but the autoscaler throttled %d minutes", tr.Name, marked, rows[i].Policy.ThrottledMinutes)
		}
	}
}
