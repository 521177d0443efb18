package settings

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/telemetry"
)

func TestLoadDefaults(t *testing.T) {
	s, err := Load(envconfig.Lookup(map[string]string{EnvStreamName: "orders"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		Port:            DefaultPort,
		DrainWindow:     DefaultDrainWindow,
		ShutdownTimeout: DefaultShutdownTimeout,
		Telemetry: envconfig.Telemetry{
			LogLevel: slog.LevelInfo,
			Metrics:  telemetry.MetricsConfig{FlushInterval: telemetry.DefaultFlushInterval},
		},
		Producer: kpl.Config{
			StreamName:        "orders",
			MaxBufferedTime:   kpl.DefaultMaxBufferedTime,
			RecordTTL:         kpl.DefaultRecordTTL,
			MaxAggregateBytes: kpl.DefaultMaxAggregateBytes,
			MaxBufferedBytes:  kpl.DefaultMaxBufferedBytes,
			RateLimitPercent:  kpl.DefaultRateLimitPercent,
			MaxInFlight:       kpl.DefaultMaxInFlight,
		},
	}
	if s.Port != want.Port || s.DrainWindow != want.DrainWindow || s.ShutdownTimeout != want.ShutdownTimeout ||
		s.LogLevel != want.LogLevel || s.Metrics.FlushInterval != want.Metrics.FlushInterval ||
		s.Producer != want.Producer || s.KinesisEndpoint != "" || s.LocalCredentials || s.Region != "" {
		t.Errorf("Load = %+v\nwant     %+v", s, want)
	}
}

func TestLoadParsesEverything(t *testing.T) {
	s, err := Load(envconfig.Lookup(map[string]string{
		EnvStreamName:        "orders",
		EnvRegion:            "eu-west-1",
		EnvPort:              "9090",
		EnvListenHost:        "127.0.0.1",
		EnvKinesisEndpoint:   "http://127.0.0.1:4568",
		EnvMaxBufferedTime:   "250ms",
		EnvRecordTTL:         "10s",
		EnvMaxAggregateBytes: "100000",
		EnvMaxBufferedBytes:  "2097152",
		EnvRateLimitPercent:  "80",
		EnvMaxInFlight:       "8",
		EnvDrainWindow:       "0s",
		EnvShutdownTimeout:   "20s",
		EnvLogLevel:          "debug",
		EnvMetricsNamespace:  "Test",
		EnvMetricsInterval:   "10s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	p := s.Producer
	if s.Region != "eu-west-1" || s.Port != 9090 || s.ListenHost != "127.0.0.1" || s.KinesisEndpoint != "http://127.0.0.1:4568" || !s.LocalCredentials ||
		p.MaxBufferedTime != 250*time.Millisecond || p.RecordTTL != 10*time.Second || p.MaxAggregateBytes != 100000 ||
		p.MaxBufferedBytes != 2<<20 || p.RateLimitPercent != 80 || p.MaxInFlight != 8 ||
		s.DrainWindow != 0 || s.ShutdownTimeout != 20*time.Second || s.LogLevel != slog.LevelDebug ||
		s.Metrics.Namespace != "Test" || s.Metrics.FlushInterval != 10*time.Second {
		t.Errorf("Load = %+v", s)
	}
}

func TestLoadLocalEndpoint(t *testing.T) {
	tests := map[string]struct {
		env            map[string]string
		wantRegion     string
		wantLocalCreds bool
	}{
		"endpoint alone":         {map[string]string{EnvKinesisEndpoint: "http://127.0.0.1:1"}, LocalRegion, true},
		"endpoint with key":      {map[string]string{EnvKinesisEndpoint: "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "AK"}, LocalRegion, false},
		"endpoint with profile":  {map[string]string{EnvKinesisEndpoint: "http://127.0.0.1:1", "AWS_PROFILE": "dev"}, LocalRegion, false},
		"endpoint with region":   {map[string]string{EnvKinesisEndpoint: "https://kinesis.example", EnvRegion: "eu-west-1"}, "eu-west-1", true},
		"no endpoint, no region": {map[string]string{}, "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.env[EnvStreamName] = "s"
			s, err := Load(envconfig.Lookup(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if s.Region != tc.wantRegion || s.LocalCredentials != tc.wantLocalCreds {
				t.Errorf("region %q, local credentials %v; want %q, %v", s.Region, s.LocalCredentials, tc.wantRegion, tc.wantLocalCreds)
			}
		})
	}
}

func TestLoadNamesTheBadVariable(t *testing.T) {
	tests := map[string]struct {
		name, value string
	}{
		"missing stream":         {EnvStreamName, ""},
		"port not a number":      {EnvPort, "http"},
		"port out of range":      {EnvPort, "70000"},
		"port zero":              {EnvPort, "0"},
		"endpoint without URL":   {EnvKinesisEndpoint, "127.0.0.1:4568"},
		"linger not a duration":  {EnvMaxBufferedTime, "100"},
		"linger zero":            {EnvMaxBufferedTime, "0s"},
		"ttl negative":           {EnvRecordTTL, "-1s"},
		"aggregate too large":    {EnvMaxAggregateBytes, "2000000"},
		"aggregate too small":    {EnvMaxAggregateBytes, "1"},
		"buffer below 1 MiB":     {EnvMaxBufferedBytes, "1000"},
		"rate limit zero":        {EnvRateLimitPercent, "0"},
		"in flight not a number": {EnvMaxInFlight, "many"},
		"drain negative":         {EnvDrainWindow, "-5s"},
		"drain beyond stop":      {EnvDrainWindow, "30s"},
		"shutdown zero":          {EnvShutdownTimeout, "0s"},
		"log level":              {EnvLogLevel, "loud"},
		"metrics interval":       {EnvMetricsInterval, "soon"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{EnvStreamName: "s", tc.name: tc.value}
			_, err := Load(envconfig.Lookup(env))
			if err == nil {
				t.Fatalf("%s=%q accepted", tc.name, tc.value)
			}
			var bad *envconfig.Error
			if !errors.As(err, &bad) || bad.Name != tc.name || !strings.HasPrefix(err.Error(), tc.name+"=") {
				t.Errorf("error %q does not start with the variable %s", err, tc.name)
			}
		})
	}
}

func TestLoadReportsEveryError(t *testing.T) {
	_, err := Load(envconfig.Lookup(map[string]string{EnvPort: "x", EnvRecordTTL: "y"}))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, name := range []string{EnvStreamName, EnvPort, EnvRecordTTL} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestLoadAcceptsTheDeprecatedStopTimeoutWithAWarning(t *testing.T) {
	// GIVEN the shutdown timeout under its former name
	s, err := Load(envconfig.Lookup(map[string]string{EnvStreamName: "s", EnvStopTimeoutDeprecated: "12s"}))
	// THEN its value is used, with a warning that names the new name (envconfig's tests cover the precedence)
	if err != nil || s.ShutdownTimeout != 12*time.Second {
		t.Fatalf("Load = %v, %v; want ShutdownTimeout 12s", s.ShutdownTimeout, err)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], EnvShutdownTimeout) {
		t.Errorf("warnings %q, want one naming %s", s.Warnings, EnvShutdownTimeout)
	}
}

func TestLoadNamesTheDeprecatedVariableWhenItsValueIsBad(t *testing.T) {
	_, err := Load(envconfig.Lookup(map[string]string{EnvStreamName: "s", EnvStopTimeoutDeprecated: "soon"}))
	var bad *envconfig.Error
	if !errors.As(err, &bad) || bad.Name != EnvStopTimeoutDeprecated || bad.Value != "soon" {
		t.Fatalf("error %v, want one naming %s=soon", err, EnvStopTimeoutDeprecated)
	}
}
