package settings

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/s3sink"
)

func TestLoadS3Settings(t *testing.T) {
	base := map[string]string{EnvStreamName: "s", EnvApplicationName: "app", EnvProcessor: ProcessorS3, EnvS3Bucket: "lake"}
	tests := map[string]struct {
		set     map[string]string
		wantVar string
		want    s3sink.Config
	}{
		"defaults": {want: s3sink.Config{Bucket: "lake", Prefix: DefaultS3Prefix, Format: s3sink.FormatParquet,
			MaxObjectBytes: s3sink.DefaultMaxObjectBytes, MaxObjectAge: time.Minute}},
		"every setting": {
			set: map[string]string{EnvS3Prefix: "streams/orders", EnvS3Format: "ndjson", EnvS3MaxObjectBytes: "1048576",
				EnvS3MaxObjectAge: "15s", EnvS3SpillDir: "/spill"},
			want: s3sink.Config{Bucket: "lake", Prefix: "streams/orders", Format: s3sink.FormatNDJSON, MaxObjectBytes: 1 << 20,
				MaxObjectAge: 15 * time.Second, SpillDir: "/spill"},
		},
		"no bucket":           {set: map[string]string{EnvS3Bucket: ""}, wantVar: EnvS3Bucket},
		"bad format":          {set: map[string]string{EnvS3Format: "csv"}, wantVar: EnvS3Format},
		"object size too big": {set: map[string]string{EnvS3MaxObjectBytes: "2147483648"}, wantVar: EnvS3MaxObjectBytes},
		"bad age":             {set: map[string]string{EnvS3MaxObjectAge: "a minute"}, wantVar: EnvS3MaxObjectAge},
		"prefix with slashes": {set: map[string]string{EnvS3Prefix: "/lake/"}, wantVar: EnvS3Prefix},
		"bad endpoint":        {set: map[string]string{EnvS3Endpoint: "127.0.0.1:5000"}, wantVar: EnvS3Endpoint},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN the environment of a consumer with PROCESSOR=s3
			env := maps.Clone(base)
			maps.Copy(env, tc.set)
			// WHEN it is loaded
			s, err := Load(envconfig.Lookup(env))
			// THEN a bad value is named, and good ones make the sink's configuration
			if tc.wantVar != "" {
				var ee *Error
				if !errors.As(err, &ee) || ee.Name != tc.wantVar {
					t.Fatalf("error %v, want one naming %s", err, tc.wantVar)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.S3 != tc.want {
				t.Errorf("sink configuration %+v, want %+v", s.S3, tc.want)
			}
			if !s.ProcessEmptyBatches {
				t.Error("empty batches are not delivered: idle shards would never flush by age")
			}
		})
	}
}

func TestS3EndpointMeansLocalCredentials(t *testing.T) {
	// GIVEN only the S3 endpoint overridden (the other services' endpoints too in local runs)
	s, err := Load(envconfig.Lookup(map[string]string{EnvStreamName: "s", EnvApplicationName: "app",
		EnvProcessor: ProcessorS3, EnvS3Bucket: "lake", EnvS3Endpoint: "http://127.0.0.1:5000"}))
	// THEN the emulators' region and dummy credentials are used
	if err != nil || !s.LocalCredentials || s.Region == "" || s.S3Endpoint != "http://127.0.0.1:5000" {
		t.Fatalf("settings %+v, %v: want local credentials, a region and the endpoint", s.AWS, err)
	}
}
