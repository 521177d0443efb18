package settings

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/kcl"
)

// fuzzEnvNames are the variables Load reads, in the order a fuzzed input gives their values.
var fuzzEnvNames = []string{
	EnvStreamName, EnvApplicationName, EnvReadMode, EnvConsumerARN, EnvInitialPosition, EnvInitialTimestamp,
	EnvKinesisEndpoint, EnvDynamoDBEndpoint, EnvWorkerID, EnvCreateLeaseTable, EnvCheckpointRecords,
	EnvCheckpointInterval, EnvFailoverTime, EnvShutdownTimeout, EnvLeaseBalancing, EnvRebalanceThreshold, EnvHandoffTimeout,
}

// FuzzLoad: any environment yields settings or an *Error naming one of the variables, never a panic; accepted
// settings are within their documented ranges.
func FuzzLoad(f *testing.F) {
	f.Add("s\x00app\x00fanout\x00arn:aws:kinesis:us-east-1:1:stream/s/consumer/c:1\x00AT_TIMESTAMP\x002024-01-02T03:04:05Z\x00http://127.0.0.1:4567\x00https://x\x00w\x00true\x00100\x005s\x0010s\x0020s")
	f.Add("s\x00app\x00polling\x00\x00LATEST\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	f.Add("s\x00a b\x00")
	f.Add("s\x00app\x00\x00\x00\x00\x00\x00\x00\x00\x00-1\x00-5s\x000\x001h")
	f.Add("")
	f.Fuzz(func(t *testing.T, input string) {
		values := strings.Split(input, "\x00")
		env := map[string]string{}
		for i, name := range fuzzEnvNames {
			if i < len(values) {
				env[name] = values[i]
			}
		}
		s, err := Load(envconfig.Lookup(env))
		if err != nil {
			var bad *Error
			if !errors.As(err, &bad) {
				t.Fatalf("error %v (%T) is not a *settings.Error", err, err)
			}
			if !slices.Contains(fuzzEnvNames, bad.Name) || !strings.Contains(err.Error(), bad.Name) {
				t.Fatalf("error %q names %q, want one of the variables", err, bad.Name)
			}
			if bad.Value != env[bad.Name] {
				t.Fatalf("error %q quotes %q, but %s=%q", err, bad.Value, bad.Name, env[bad.Name])
			}
			return
		}
		switch {
		case s.Stream == "" || s.Application == "":
			t.Fatalf("accepted without a stream or application: %+v", s)
		case s.ReadMode != kcl.ReadModePolling && s.ReadMode != kcl.ReadModeFanOut:
			t.Fatalf("read mode %q", s.ReadMode)
		case s.InitialPosition != kcl.CheckpointTrimHorizon && s.InitialPosition != kcl.CheckpointLatest &&
			s.InitialPosition != kcl.CheckpointAtTimestamp:
			t.Fatalf("initial position %q", s.InitialPosition)
		case s.InitialPosition == kcl.CheckpointAtTimestamp && s.InitialTimestamp.IsZero():
			t.Fatal("AT_TIMESTAMP without a timestamp")
		case s.CheckpointRecords < 1 || s.CheckpointInterval <= 0 || s.FailoverTime <= 0 || s.ShutdownTimeout <= 0 ||
			s.RebalanceThresholdPercent < 1 || s.RebalanceThresholdPercent > 100 || s.HandoffTimeout <= 0:
			t.Fatalf("out-of-range numbers accepted: %+v", s)
		case s.Balancing != kcl.BalancingLoad && s.Balancing != kcl.BalancingCount:
			t.Fatalf("balancing %q", s.Balancing)
		}
	})
}
