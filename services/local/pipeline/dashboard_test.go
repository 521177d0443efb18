package pipeline

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/multilang"
)

func TestParseEMF(t *testing.T) {
	tests := map[string]struct {
		line   string
		want   map[string][]float64
		wantOK bool
	}{
		"a counter and a distribution": {
			line:   `{"Records":3,"Latency":[1.5,2],"_aws":{"Timestamp":1000,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"Records"},{"Name":"Latency"}]}]}}`,
			want:   map[string][]float64{"Records": {3}, "Latency": {1.5, 2}},
			wantOK: true,
		},
		"a value no directive names is not a metric": {
			line:   `{"Records":3,"Stray":7,"_aws":{"Timestamp":1000,"CloudWatchMetrics":[{"Metrics":[{"Name":"Records"}]}]}}`,
			want:   map[string][]float64{"Records": {3}},
			wantOK: true,
		},
		"a log line":                {line: `{"level":"INFO","msg":"lease taken"}`},
		"no timestamp":              {line: `{"Records":3,"_aws":{"CloudWatchMetrics":[{"Metrics":[{"Name":"Records"}]}]}}`},
		"a value of the wrong kind": {line: `{"Records":"x","_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Metrics":[{"Name":"Records"}]}]}}`},
		"broken JSON":               {line: `{"_aws":`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := parseEMF([]byte(tc.line))
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if ok && (!got.At.Equal(time.UnixMilli(1000)) || !maps.EqualFunc(got.Values, tc.want, slices.Equal)) {
				t.Errorf("parsed %v at %v, want %v at 1000 ms", got.Values, got.At, tc.want)
			}
		})
	}
}

func FuzzParseEMF(f *testing.F) {
	f.Add([]byte(`{"A":1,"_aws":{"Timestamp":5,"CloudWatchMetrics":[{"Metrics":[{"Name":"A"}]}]}}`))
	f.Add([]byte(`{"_aws":{"Timestamp":5}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		l, ok := parseEMF(line)
		if ok && (l.At.IsZero() || len(l.Values) == 0) {
			t.Fatalf("accepted %q as %+v", line, l)
		}
	})
}

// emf writes an EMF line of the metrics at t, as telemetry.Metrics does.
func emf(t time.Time, metrics map[string]any) string {
	var names, values []string
	for _, name := range slices.Sorted(maps.Keys(metrics)) {
		names = append(names, fmt.Sprintf(`{"Name":%q}`, name))
		values = append(values, fmt.Sprintf(`%q:%v`, name, metrics[name]))
	}
	return fmt.Sprintf(`{%s,"_aws":{"Timestamp":%d,"CloudWatchMetrics":[{"Namespace":"StreamProc","Dimensions":[[]],"Metrics":[%s]}]}}`,
		strings.Join(values, ","), t.UnixMilli(), strings.Join(names, ","))
}

func TestDashboardSnapshotIsWhatTheLogsSay(t *testing.T) {
	// GIVEN the logs of a producer, two workers (one running a MultiLang processor) and the autoscaler
	dir := t.TempDir()
	start := time.Now().Add(-time.Minute)
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	write := func(name string, lines ...string) {
		if err := os.WriteFile(filepath.Join(dir, name+".log"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("producer",
		emf(at(2), map[string]any{kpl.MetricUserRecordsPut: 100, kpl.MetricKinesisRecordsPut: 4}),
		`{"level":"INFO","msg":"serving"}`,
		emf(at(4), map[string]any{kpl.MetricUserRecordsPut: 60, kpl.MetricKinesisRecordsPut: 2}))
	write("consumer-1", emf(at(3), map[string]any{kcl.MetricRecordsProcessed: 90, kcl.MetricCurrentLeases: "[2,2]"}))
	write("consumer-2", emf(at(5), map[string]any{kcl.MetricRecordsProcessed: 70, multilang.MetricChildrenStarted: 3}))
	write("autoscaler",
		fmt.Sprintf(`{"time":%q,"msg":"scaling decision","action":"none","reason":"steady","current_shard_count":2,"target_shard_count":2}`, at(1).Format(time.RFC3339Nano)),
		fmt.Sprintf(`{"time":%q,"msg":"scaling decision","action":"UpdateShardCount","reason":"utilisation above 70%%","current_shard_count":2,"target_shard_count":4}`, at(6).Format(time.RFC3339Nano)))
	c := &dashboardCollector{logDir: dir, interval: 2 * time.Second, sources: map[string]*dashboardSource{}, started: start,
		shards: func(context.Context) (int, error) { return 4, nil }}
	// WHEN collected
	if err := c.collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := c.snapshot()
	// THEN the totals are the counters' sums, each chart holds its metric per interval, and the action is an event
	if s.Totals != (dashboardTotals{RecordsIn: 160, KinesisRecordsIn: 6, RecordsProcessed: 160, Workers: 2}) {
		t.Errorf("totals %+v", s.Totals)
	}
	charts := map[string]dashboardChart{}
	for _, ch := range s.Charts {
		charts[ch.ID] = ch
	}
	if in := charts["records-in"].Series[0].Points; len(in) != 2 || in[0][1] != 50 || in[1][1] != 30 {
		t.Errorf("records in per second %v, want 50 then 30 (100 and 60 over 2 s)", in)
	}
	if leases := charts["leases"].Series; len(leases) != 2 || leases[0].Label != "consumer-1" || leases[0].Points[0][1] != 2 {
		t.Errorf("leases per worker %+v", leases)
	}
	if shards := charts["shards"].Series[0].Points; len(shards) != 3 || shards[2][1] != 4 {
		t.Errorf("open shards %v, want 2 and 2 from the decisions, then 4 now", shards)
	}
	if p, ok := charts["processor"]; !ok || len(p.Series) != 1 || p.Series[0].Label != multilang.MetricChildrenStarted {
		t.Errorf("processor chart %+v, want the MultiLang worker's metric", p)
	}
	if len(s.Events) != 1 || s.Events[0].Label != "UpdateShardCount 2→4" || s.Events[0].Reason != "utilisation above 70%" {
		t.Errorf("events %+v, want the one action with its reason", s.Events)
	}
	if s.From != start.UnixMilli() {
		t.Errorf("charts from %d, want the start %d", s.From, start.UnixMilli())
	}
}
