package settings

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/kcl"
)

func TestLoadSettingsNamesTheBadVariable(t *testing.T) {
	base := map[string]string{EnvStreamName: "s", EnvApplicationName: "app"}
	tests := map[string]struct {
		set     map[string]string
		wantVar string
	}{
		"no stream":            {set: map[string]string{EnvStreamName: ""}, wantVar: EnvStreamName},
		"no application":       {set: map[string]string{EnvApplicationName: ""}, wantVar: EnvApplicationName},
		"bad read mode":        {set: map[string]string{EnvReadMode: "push"}, wantVar: EnvReadMode},
		"bad position":         {set: map[string]string{EnvInitialPosition: "OLDEST"}, wantVar: EnvInitialPosition},
		"timestamp missing":    {set: map[string]string{EnvInitialPosition: "AT_TIMESTAMP"}, wantVar: EnvInitialTimestamp},
		"bad endpoint":         {set: map[string]string{EnvKinesisEndpoint: "localhost:4567"}, wantVar: EnvKinesisEndpoint},
		"bad checkpoint count": {set: map[string]string{EnvCheckpointRecords: "0"}, wantVar: EnvCheckpointRecords},
		"bad interval":         {set: map[string]string{EnvCheckpointInterval: "soon"}, wantVar: EnvCheckpointInterval},
		"bad create flag":      {set: map[string]string{EnvCreateLeaseTable: "maybe"}, wantVar: EnvCreateLeaseTable},
		"bad consumer arn":     {set: map[string]string{EnvConsumerARN: "consumer"}, wantVar: EnvConsumerARN},
		"bad balancing":        {set: map[string]string{EnvLeaseBalancing: "cpu"}, wantVar: EnvLeaseBalancing},
		"threshold over 100":   {set: map[string]string{EnvRebalanceThreshold: "150"}, wantVar: EnvRebalanceThreshold},
		"bad hand-off timeout": {set: map[string]string{EnvHandoffTimeout: "-1s"}, wantVar: EnvHandoffTimeout},
		"good":                 {set: map[string]string{EnvReadMode: "fanout", EnvInitialPosition: "LATEST"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.set {
				env[k] = v
			}
			_, err := Load(envconfig.Lookup(env))
			if tc.wantVar == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var ee *Error
			if !errors.As(err, &ee) || ee.Name != tc.wantVar || !strings.Contains(err.Error(), tc.wantVar) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantVar)
			}
		})
	}
}

func TestLoadSettingsDefaults(t *testing.T) {
	s, err := Load(envconfig.Lookup(map[string]string{EnvStreamName: "s", EnvApplicationName: "app", EnvDynamoDBEndpoint: "http://127.0.0.1:1"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.ReadMode != kcl.ReadModePolling || s.InitialPosition != kcl.CheckpointTrimHorizon || !s.CreateLeaseTable ||
		s.CheckpointRecords != 1000 || s.CheckpointInterval != 10*time.Second || s.FailoverTime != 10*time.Second ||
		s.Balancing != kcl.BalancingLoad || s.RebalanceThresholdPercent != 10 || s.HandoffTimeout != 30*time.Second {
		t.Fatalf("defaults: %+v", s)
	}
}
