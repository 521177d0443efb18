package settings

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/kcl"
)

// writeProperties writes a properties file, and an executable processor script beside it, into a temporary folder.
func writeProperties(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sample_kclpy_app.py"), []byte("#!/usr/bin/env python3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sample.properties")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// theBlogsProperties is amazon_kclpy's sample.properties, as the blog's consumer deploys it.
const theBlogsProperties = `# The script that abides by the multi-language protocol.
executableName = sample_kclpy_app.py
streamArn = arn:aws:kinesis:us-east-5:000000000000:stream/kclpysample
streamName = kclpysample
applicationName = PythonKCLSample
AwsCredentialsProvider = DefaultCredentialsProvider
processingLanguage = python/3.8
initialPositionInStream = TRIM_HORIZON
regionName = us-east-1
`

func TestTheJavaDaemonsPropertiesFileIsAcceptedUnchanged(t *testing.T) {
	// GIVEN the blog's sample properties file, its processor beside it
	path := writeProperties(t, theBlogsProperties)
	// WHEN read with an empty environment
	fromFile, warnings, err := PropertiesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadWithProperties(envconfig.Lookup(nil), fromFile)
	if err != nil {
		t.Fatal(err)
	}
	// THEN the consumer runs the MultiLang processor on the stream, with nothing to warn about
	wantCommand := []string{filepath.Join(filepath.Dir(path), "sample_kclpy_app.py")}
	if s.Processor != ProcessorMultiLang || !slices.Equal(s.MultiLang.Command, wantCommand) || s.Stream != "kclpysample" ||
		s.Application != "PythonKCLSample" || s.InitialPosition != kcl.CheckpointTrimHorizon || s.Region != "us-east-1" {
		t.Errorf("settings %+v", s)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %q for the Java daemon's own sample", warnings)
	}
}

func TestPropertiesFileSettingsAndTheirVariables(t *testing.T) {
	// GIVEN every key the consumer maps
	path := writeProperties(t, `executableName = python3 -u processor.py
streamName = orders
applicationName = orders-app
initialPositionInStream = LATEST
failoverTimeMillis = 20000
maxRecords = 500
idleTimeBetweenReadsInMillis = 250
callProcessRecordsEvenForEmptyRecordList = true
timeoutInSeconds = 30
retrievalMode = POLLING
workerId = w-7
shardSyncIntervalMillis = 30000
multiLangProtocolVersion = 1
`)
	fromFile, _, err := PropertiesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// WHEN loaded, with the environment setting the stream too
	s, err := LoadWithProperties(envconfig.Lookup(map[string]string{EnvStreamName: "from-env"}), fromFile)
	if err != nil {
		t.Fatal(err)
	}
	// THEN each property gives its variable's value, and the environment wins
	if s.Stream != "from-env" || s.Application != "orders-app" || s.InitialPosition != kcl.CheckpointLatest ||
		s.FailoverTime != 20*time.Second || s.MaxRecords != 500 || s.PollIdleInterval != 250*time.Millisecond ||
		!s.ProcessEmptyBatches || s.MultiLang.Timeout != 30*time.Second || s.ReadMode != kcl.ReadModePolling ||
		s.WorkerID != "w-7" || s.ShardSyncInterval != 30*time.Second || s.MultiLang.ProtocolVersion != 1 ||
		!slices.Equal(s.MultiLang.Command, []string{"python3", "-u", "processor.py"}) {
		t.Errorf("settings %+v", s)
	}
}

func TestPropertiesFileNamesTheBadKey(t *testing.T) {
	tests := map[string]struct {
		line, key string
	}{
		"millis not a number":   {"failoverTimeMillis = ten", "failoverTimeMillis"},
		"negative seconds":      {"timeoutInSeconds = -1", "timeoutInSeconds"},
		"unknown position":      {"initialPositionInStream = OLDEST", "initialPositionInStream"},
		"unknown retrieval":     {"retrievalMode = PUSH", "retrievalMode"},
		"not a boolean":         {"callProcessRecordsEvenForEmptyRecordList = yes please", "callProcessRecordsEvenForEmptyRecordList"},
		"not a stream ARN":      {"streamArn = orders", "streamArn"},
		"empty executable name": {"executableName =", "executableName"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := writeProperties(t, "streamName = s\napplicationName = a\n"+tc.line+"\n")
			_, _, err := PropertiesFile(path)
			var bad *Error
			if !errors.As(err, &bad) || !strings.HasPrefix(bad.Name, tc.key+" (") || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and the file", err, tc.key)
			}
		})
	}
}

func TestPropertiesFileWarnsOfWhatItIgnores(t *testing.T) {
	path := writeProperties(t, "executableName = sample_kclpy_app.py\nstreamName = s\napplicationName = a\n"+
		"maxLeasesForWorker = 4\nAwsCredentialsProvider = ProfileCredentialsProvider\n")
	_, warnings, err := PropertiesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(warnings, "\n")
	if len(warnings) != 2 || !strings.Contains(joined, "maxLeasesForWorker") || !strings.Contains(joined, "default chain") {
		t.Errorf("warnings %q, want the unknown key and the credentials provider named", warnings)
	}
}

func TestMultiLangNeedsACommand(t *testing.T) {
	_, err := Load(envconfig.Lookup(map[string]string{EnvStreamName: "s", EnvApplicationName: "a", EnvProcessor: ProcessorMultiLang}))
	var bad *Error
	if !errors.As(err, &bad) || bad.Name != EnvMultiLangCommand {
		t.Fatalf("error %v, want one naming %s", err, EnvMultiLangCommand)
	}
}
