package stacks_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/streamproc/streamproc/constructs/consumerservice"
	"github.com/streamproc/streamproc/constructs/datalake"
	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/s3sink"
	"github.com/streamproc/streamproc/stacks"
)

func TestLakeBucket(t *testing.T) {
	// GIVEN the defaults (consumerSink=s3), THEN the bucket is encrypted, private, unversioned, TLS only, and its
	// records move to Intelligent-Tiering after 30 days while Athena's results expire after 7
	_, bucket := resourceWithPrefix(t, snapshotStack, "AWS::S3::Bucket", "LakeBucket")
	p := props(bucket)
	if got := jsonString(t, p["BucketEncryption"]); !strings.Contains(got, `"SSEAlgorithm":"AES256"`) {
		t.Errorf("bucket encryption %s, want S3-managed (AES256)", got)
	}
	if got := jsonString(t, p["PublicAccessBlockConfiguration"]); strings.Count(got, "true") != 4 {
		t.Errorf("public access block %s, want all four settings on", got)
	}
	if v, ok := p["VersioningConfiguration"]; ok {
		t.Errorf("versioning %v, want off (objects are written once, never replaced)", v)
	}
	rules := jsonString(t, p["LifecycleConfiguration"])
	for _, want := range []string{`"Prefix":"records/"`, `"StorageClass":"INTELLIGENT_TIERING","TransitionInDays":30`,
		`"Prefix":"athena-results/"`, `"ExpirationInDays":7`, `"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}`} {
		if !strings.Contains(rules, want) {
			t.Errorf("lifecycle rules %s lack %s", rules, want)
		}
	}
	if bucket["DeletionPolicy"] != "Delete" {
		t.Errorf("bucket DeletionPolicy %v, want Delete with retainData=false", bucket["DeletionPolicy"])
	}
	_, policy := resourceWithPrefix(t, snapshotStack, "AWS::S3::BucketPolicy", "LakeBucketPolicy")
	if got := jsonString(t, props(policy)["PolicyDocument"]); !strings.Contains(got, `"aws:SecureTransport":"false"`) || !strings.Contains(got, `"Effect":"Deny"`) {
		t.Errorf("bucket policy %s, want requests without TLS denied", got)
	}
	// AND the variant (a MultiLang consumer) builds no lake
	if got := resources(t, variantStack, "AWS::S3::Bucket"); len(got) != 0 {
		t.Errorf("variant stack has buckets %v, want none: a MultiLang consumer keeps its own output", slices.Collect(mapsKeys(got)))
	}
}

func TestLakeTableProjectsItsPartitions(t *testing.T) {
	// GIVEN the Glue table over the sink's prefix
	table := props(only(t, snapshotStack, "AWS::Glue::Table"))
	input := table["TableInput"].(map[string]any)
	params := input["Parameters"].(map[string]any)
	// THEN dt and hr are projected (no crawler, no MSCK REPAIR TABLE) where the sink writes them
	want := map[string]any{
		"projection.enabled": "true", "projection.dt.type": "date", "projection.dt.format": "yyyy-MM-dd",
		"projection.dt.range": "NOW-3653DAYS,NOW", "projection.hr.type": "integer", "projection.hr.range": "0,23",
		"projection.hr.digits": "2", "classification": "parquet",
	}
	for k, v := range want {
		if params[k] != v {
			t.Errorf("table parameter %s = %v, want %v", k, params[k], v)
		}
	}
	if got := jsonString(t, params["storage.location.template"]); !strings.Contains(got, `/records/dt=${dt}/hr=${hr}/`) {
		t.Errorf("storage.location.template %s, want the sink's keys <prefix>/dt=${dt}/hr=${hr}/", got)
	}
	// AND its columns are the sink's, in Athena's types for Parquet, partitioned by dt and hr
	var cols []string
	for _, c := range input["StorageDescriptor"].(map[string]any)["Columns"].([]any) {
		cm := c.(map[string]any)
		cols = append(cols, cm["Name"].(string)+" "+cm["Type"].(string))
	}
	wantCols := []string{"shard_id string", "sequence_number string", "sub_sequence_number bigint", "partition_key string",
		"approximate_arrival_timestamp timestamp", "data binary"}
	if !slices.Equal(cols, wantCols) {
		t.Errorf("columns %v, want %v", cols, wantCols)
	}
	if got := jsonString(t, input["PartitionKeys"]); !strings.Contains(got, `"Name":"dt"`) || !strings.Contains(got, `"Name":"hr"`) {
		t.Errorf("partition keys %s, want dt and hr", got)
	}
	if got := jsonString(t, input["StorageDescriptor"]); !strings.Contains(got, "ParquetHiveSerDe") {
		t.Errorf("storage descriptor %s, want the Parquet SerDe", got)
	}
	if db := props(only(t, snapshotStack, "AWS::Glue::Database")); jsonString(t, db["DatabaseInput"]) != `{"Description":"The stream's records, landed by the consumer's S3 sink","Name":"streamproc_lake"}` {
		t.Errorf("database %s, want streamproc_lake", jsonString(t, db["DatabaseInput"]))
	}
}

func TestLakeWorkGroup(t *testing.T) {
	// GIVEN the Athena workgroup, THEN it enforces engine 3, encrypted results in the bucket, and a scan cutoff
	wg := props(only(t, snapshotStack, "AWS::Athena::WorkGroup"))
	got := jsonString(t, wg["WorkGroupConfiguration"])
	for _, want := range []string{`"EnforceWorkGroupConfiguration":true`, `"EncryptionOption":"SSE_S3"`,
		`"SelectedEngineVersion":"Athena engine version 3"`, `/athena-results/`, `"BytesScannedCutoffPerQuery":10737418240`} {
		if !strings.Contains(got, want) {
			t.Errorf("workgroup configuration %s lacks %s", got, want)
		}
	}
	if wg["Name"] != snapshotStack+"-lake" || wg["RecursiveDeleteOption"] != true {
		t.Errorf("workgroup %v / %v, want %s-lake, deleted with its queries", wg["Name"], wg["RecursiveDeleteOption"], snapshotStack)
	}
	// AND the outputs name the bucket, the table and the workgroup
	outputs := synthesized.raw[snapshotStack]["Outputs"].(map[string]any)
	for _, name := range []string{stacks.OutputLakeBucket, stacks.OutputLakeTable, stacks.OutputLakeWorkGroup} {
		if _, ok := outputs[name]; !ok {
			t.Errorf("no output %s", name)
		}
	}
	if got := outputs[stacks.OutputLakeTable].(map[string]any)["Value"]; got != "streamproc_lake."+datalake.TableName {
		t.Errorf("table output %v, want streamproc_lake.records", got)
	}
}

func TestConsumerSpillsToATaskVolume(t *testing.T) {
	// GIVEN the consumer with the S3 sink, THEN its read-only container mounts a writable volume where it spills
	c := taskContainer(t, snapshotStack, "Consumer", consumerservice.ContainerName)
	mounts := jsonString(t, c["MountPoints"])
	if !strings.Contains(mounts, `"ContainerPath":"`+consumerservice.SpillPath+`"`) || !strings.Contains(mounts, `"ReadOnly":false`) {
		t.Errorf("consumer mount points %s, want a writable %s", mounts, consumerservice.SpillPath)
	}
	if containerEnv(t, c)[settings.EnvS3SpillDir] != consumerservice.SpillPath {
		t.Errorf("consumer spills to %q, want %s", containerEnv(t, c)[settings.EnvS3SpillDir], consumerservice.SpillPath)
	}
}

func TestDashboardShowsTheSink(t *testing.T) {
	for stack, want := range map[string]bool{snapshotStack: true, variantStack: false} {
		body := jsonString(t, props(only(t, stack, "AWS::CloudWatch::Dashboard"))["DashboardBody"])
		for _, m := range []string{s3sink.MetricObjectsWritten, s3sink.MetricBytesWritten, s3sink.MetricRecordsWritten,
			s3sink.MetricUploadLatency, s3sink.MetricFlushReason, s3sink.MetricUploadErrors, s3sink.MetricObjectsAdopted} {
			if strings.Contains(body, m) != want {
				t.Errorf("%s dashboard shows %s: %v, want %v", stack, m, !want, want)
			}
		}
		// the body is JSON inside the template's JSON: its quotes are escaped
		if want && !strings.Contains(body, `\"`+s3sink.DimensionFlushReason+`\",\"`+s3sink.FlushLeaseLost+`\"`) {
			t.Errorf("%s dashboard has no FlushReason by %s", stack, s3sink.DimensionFlushReason)
		}
	}
}

// mapsKeys returns m's keys.
func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
