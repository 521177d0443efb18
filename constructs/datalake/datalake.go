// Package datalake defines where the consumer's S3 sink lands the stream and how it is queried: a bucket
// (S3-managed encryption, TLS only, public access blocked, versioning off, lifecycle to Intelligent-Tiering and
// expiry), a Glue database and table over the sink's prefix with partition projection on dt and hr (so Athena
// queries need no crawler and no MSCK REPAIR TABLE), and an Athena workgroup whose results are encrypted and
// expire. The table's columns are the sink's (services/s3sink), in the format the sink writes.
package datalake

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsathena"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsglue"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/s3sink"
)

// Defaults of Props and the fixed parts of the lake.
const (
	// DefaultIntelligentTieringDays is when objects move to S3 Intelligent-Tiering (the sink's objects are far
	// above its 128 KiB minimum, and queries touch recent partitions most).
	DefaultIntelligentTieringDays = 30
	// DefaultProjectionDays is how far back the dt partitions are projected when objects never expire.
	DefaultProjectionDays = 3653
	// TableName is the Glue table of the records.
	TableName = "records"
	// ResultsPrefix is where Athena writes query results in the bucket; they expire after ResultsExpirationDays.
	ResultsPrefix         = "athena-results"
	ResultsExpirationDays = 7
	// BytesScannedCutoff stops a query of the workgroup that would scan more (10 GiB): a guard against a query
	// without a dt predicate over years of data.
	BytesScannedCutoff = 10 << 30
	// ObjectActions are the S3 calls the sink makes (services/s3sink's S3API: PutObject, and HeadObject, which IAM
	// authorizes as s3:GetObject), granted on the objects under the prefix only.
	putObjectAction = "s3:PutObject"
	getObjectAction = "s3:GetObject"
)

// ObjectActions are the IAM actions of the sink's S3 calls, granted by GrantWrite on the prefix's objects.
var ObjectActions = []string{putObjectAction, getObjectAction}

// Props configures a DataLake. DatabaseName and WorkGroupName are required.
type Props struct {
	// DatabaseName is the Glue database (lowercase letters, digits and underscores). Required.
	DatabaseName string
	// WorkGroupName is the Athena workgroup (unique in the account and region). Required.
	WorkGroupName string
	// Prefix is the sink's key prefix. Default: settings.DefaultS3Prefix.
	Prefix string
	// Format is the format the sink writes, which the table reads. Default: s3sink.FormatParquet.
	Format s3sink.Format
	// IntelligentTieringDays moves objects to Intelligent-Tiering this many days after they land; negative never.
	// Default: DefaultIntelligentTieringDays.
	IntelligentTieringDays int
	// ExpirationDays deletes objects this many days after they land; 0 never. Default: 0.
	ExpirationDays int
	// RemovalPolicy applies to the bucket (and its objects, which are deleted with it when DESTROY). Default:
	// awscdk.RemovalPolicy_DESTROY.
	RemovalPolicy awscdk.RemovalPolicy
}

// DataLake is the bucket, the Glue database and table, and the Athena workgroup.
type DataLake struct {
	constructs.Construct
	// Bucket holds the sink's objects under Prefix and the workgroup's query results under ResultsPrefix.
	Bucket awss3.Bucket
	// Prefix is the sink's key prefix, without slashes around it.
	Prefix string
	// Format is the format of the objects.
	Format s3sink.Format
	// Database and Table are the Glue catalog entries Athena queries.
	Database awsglue.CfnDatabase
	Table    awsglue.CfnTable
	// WorkGroup is the Athena workgroup (engine 3, encrypted results, bytes-scanned cutoff).
	WorkGroup awsathena.CfnWorkGroup
	// DatabaseName and WorkGroupName are the names users query with.
	DatabaseName, WorkGroupName string
}

var glueName = regexp.MustCompile(`^[a-z0-9_]{1,255}$`)

// New creates the lake. It panics when props are invalid.
func New(scope constructs.Construct, id *string, props *Props) *DataLake {
	if props == nil || props.WorkGroupName == "" || !glueName.MatchString(props.DatabaseName) {
		panic(fmt.Sprintf("datalake: DatabaseName (lowercase letters, digits, _) and WorkGroupName are required, got %+v", props))
	}
	p := *props
	p.Prefix = cmp.Or(p.Prefix, settings.DefaultS3Prefix)
	p.Format = cmp.Or(p.Format, s3sink.FormatParquet)
	p.IntelligentTieringDays = cmp.Or(p.IntelligentTieringDays, DefaultIntelligentTieringDays)
	p.RemovalPolicy = cmp.Or(p.RemovalPolicy, awscdk.RemovalPolicy_DESTROY)
	if p.ExpirationDays < 0 || (p.ExpirationDays > 0 && p.IntelligentTieringDays > 0 && p.ExpirationDays <= p.IntelligentTieringDays) {
		panic(fmt.Sprintf("datalake: ExpirationDays %d: want 0 (never) or more than IntelligentTieringDays %d", p.ExpirationDays, p.IntelligentTieringDays))
	}
	if p.Format != s3sink.FormatParquet && p.Format != s3sink.FormatNDJSON {
		panic(fmt.Sprintf("datalake: Format %q: want %q or %q", p.Format, s3sink.FormatParquet, s3sink.FormatNDJSON))
	}
	this := constructs.NewConstruct(scope, id)
	l := &DataLake{Construct: this, Prefix: p.Prefix, Format: p.Format, DatabaseName: p.DatabaseName, WorkGroupName: p.WorkGroupName}
	l.Bucket = newBucket(this, &p)
	l.Database, l.Table = newTable(this, l, &p)
	l.WorkGroup = newWorkGroup(this, l)
	return l
}

// GrantWrite grants role the sink's calls (ObjectActions) on the objects under the prefix, and nothing else.
func (l *DataLake) GrantWrite(role awsiam.IRole) awsiam.Grant {
	g := awsiam.Grant_AddToPrincipal(&awsiam.GrantOnPrincipalOptions{
		Grantee:      role,
		Actions:      jsii.Strings(ObjectActions...),
		ResourceArns: jsii.Strings(*l.Bucket.ArnForObjects(jsii.String(l.Prefix + "/*"))),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("S3 scopes object permissions by key prefix: the sink writes (and reads the metadata of) objects " +
			"under its own prefix, named by the records they hold, and nothing else in the bucket."),
		AppliesTo: &[]any{&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::<.+\.Arn>\/` + regexp.QuoteMeta(l.Prefix) + `\/\*$/`)}},
	}}, jsii.Bool(true))
	return g
}

// newBucket creates the bucket with its lifecycle rules.
func newBucket(scope constructs.Construct, p *Props) awss3.Bucket {
	records := &awss3.LifecycleRule{Id: jsii.String("Records"), Prefix: jsii.String(p.Prefix + "/")}
	if p.IntelligentTieringDays > 0 {
		records.Transitions = &[]*awss3.Transition{{StorageClass: awss3.StorageClass_INTELLIGENT_TIERING(),
			TransitionAfter: awscdk.Duration_Days(jsii.Number(p.IntelligentTieringDays))}}
	}
	if p.ExpirationDays > 0 {
		records.Expiration = awscdk.Duration_Days(jsii.Number(p.ExpirationDays))
	}
	rules := []*awss3.LifecycleRule{
		{Id: jsii.String("AthenaResults"), Prefix: jsii.String(ResultsPrefix + "/"), Expiration: awscdk.Duration_Days(jsii.Number(ResultsExpirationDays))},
		// The sink uploads whole objects with PutObject; Athena and users may start multipart uploads.
		{Id: jsii.String("IncompleteUploads"), AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1))},
	}
	if records.Transitions != nil || records.Expiration != nil {
		rules = append(rules, records)
	}
	b := awss3.NewBucket(scope, jsii.String("Bucket"), &awss3.BucketProps{
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Versioned:         jsii.Bool(false),
		LifecycleRules:    &rules,
		RemovalPolicy:     p.RemovalPolicy,
		// A bucket that still holds objects cannot be deleted: with DESTROY, the CDK's provider empties it first.
		AutoDeleteObjects: jsii.Bool(p.RemovalPolicy == awscdk.RemovalPolicy_DESTROY),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(b, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-S1"),
		Reason: jsii.String("Server access logs would need a second bucket per stack; the lake is written only by the consumer " +
			"task role (PutObject on its prefix) and read through Athena, whose queries CloudTrail records."),
	}}, jsii.Bool(false))
	return b
}

// columns are the table's columns: the sink's Row, in the types its format holds.
func columns(f s3sink.Format) *[]*awsglue.CfnTable_ColumnProperty {
	data := "binary"
	if f == s3sink.FormatNDJSON {
		data = "string" // base64: from_base64(data) in Athena
	}
	col := func(name, typ, comment string) *awsglue.CfnTable_ColumnProperty {
		return &awsglue.CfnTable_ColumnProperty{Name: jsii.String(name), Type: jsii.String(typ), Comment: jsii.String(comment)}
	}
	return &[]*awsglue.CfnTable_ColumnProperty{
		col("shard_id", "string", "the shard the record was read from"),
		col("sequence_number", "string", "the Kinesis record's sequence number"),
		col("sub_sequence_number", "bigint", "the user record's place in its KPL aggregate (0 when not aggregated)"),
		col("partition_key", "string", "the user record's partition key"),
		col("approximate_arrival_timestamp", "timestamp", "when Kinesis accepted the record (UTC, milliseconds)"),
		col("data", data, "the payload"),
	}
}

// storage is the table's storage descriptor for the format.
func storage(f s3sink.Format, location *string) *awsglue.CfnTable_StorageDescriptorProperty {
	sd := &awsglue.CfnTable_StorageDescriptorProperty{Columns: columns(f), Location: location}
	if f == s3sink.FormatNDJSON {
		sd.InputFormat = jsii.String("org.apache.hadoop.mapred.TextInputFormat")
		sd.OutputFormat = jsii.String("org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat")
		sd.SerdeInfo = &awsglue.CfnTable_SerdeInfoProperty{
			SerializationLibrary: jsii.String("org.apache.hive.hcatalog.data.JsonSerDe"),
			Parameters:           map[string]string{"timestamp.formats": "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"},
		}
		return sd
	}
	sd.InputFormat = jsii.String("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
	sd.OutputFormat = jsii.String("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
	sd.SerdeInfo = &awsglue.CfnTable_SerdeInfoProperty{
		SerializationLibrary: jsii.String("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
	}
	return sd
}

// newTable creates the database and the table over the prefix, with the dt and hr partitions projected.
func newTable(scope constructs.Construct, l *DataLake, p *Props) (awsglue.CfnDatabase, awsglue.CfnTable) {
	db := awsglue.NewCfnDatabase(scope, jsii.String("Database"), &awsglue.CfnDatabaseProps{
		CatalogId:     awscdk.Aws_ACCOUNT_ID(),
		DatabaseInput: &awsglue.CfnDatabase_DatabaseInputProperty{Name: jsii.String(p.DatabaseName), Description: jsii.String("The stream's records, landed by the consumer's S3 sink")},
	})
	root := awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("s3://"), l.Bucket.BucketName(), jsii.String("/" + p.Prefix + "/")})
	days := p.ExpirationDays
	if days == 0 {
		days = DefaultProjectionDays
	}
	classification := "parquet"
	if p.Format == s3sink.FormatNDJSON {
		classification = "json"
	}
	table := awsglue.NewCfnTable(scope, jsii.String("Table"), &awsglue.CfnTableProps{
		CatalogId:    awscdk.Aws_ACCOUNT_ID(),
		DatabaseName: jsii.String(p.DatabaseName),
		TableInput: &awsglue.CfnTable_TableInputProperty{
			Name:        jsii.String(TableName),
			Description: jsii.String("One row per record of the stream, exactly once; partitions dt (UTC date) and hr (UTC hour) of the object's first record"),
			TableType:   jsii.String("EXTERNAL_TABLE"),
			PartitionKeys: &[]*awsglue.CfnTable_ColumnProperty{
				{Name: jsii.String("dt"), Type: jsii.String("string"), Comment: jsii.String("yyyy-MM-dd, UTC")},
				{Name: jsii.String("hr"), Type: jsii.String("string"), Comment: jsii.String("00-23, UTC")},
			},
			Parameters: map[string]any{
				"classification":              classification,
				"EXTERNAL":                    "TRUE",
				"projection.enabled":          "true",
				"projection.dt.type":          "date",
				"projection.dt.format":        "yyyy-MM-dd",
				"projection.dt.range":         "NOW-" + strconv.Itoa(days) + "DAYS,NOW",
				"projection.dt.interval":      "1",
				"projection.dt.interval.unit": "DAYS",
				"projection.hr.type":          "integer",
				"projection.hr.range":         "0,23",
				"projection.hr.digits":        "2",
				"storage.location.template":   awscdk.Fn_Join(jsii.String(""), &[]*string{root, jsii.String("dt=${dt}/hr=${hr}/")}),
				"has_encrypted_data":          "false",
			},
			StorageDescriptor: storage(p.Format, root),
		},
	})
	table.AddDependency(db)
	return db, table
}

// newWorkGroup creates the Athena workgroup: engine 3, results encrypted in the bucket, a bytes-scanned cutoff.
func newWorkGroup(scope constructs.Construct, l *DataLake) awsathena.CfnWorkGroup {
	results := awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("s3://"), l.Bucket.BucketName(), jsii.String("/" + ResultsPrefix + "/")})
	return awsathena.NewCfnWorkGroup(scope, jsii.String("WorkGroup"), &awsathena.CfnWorkGroupProps{
		Name:                  jsii.String(l.WorkGroupName),
		Description:           jsii.String("Queries of the stream's records (Glue database " + l.DatabaseName + ")"),
		RecursiveDeleteOption: jsii.Bool(true),
		State:                 jsii.String("ENABLED"),
		WorkGroupConfiguration: &awsathena.CfnWorkGroup_WorkGroupConfigurationProperty{
			EnforceWorkGroupConfiguration:   jsii.Bool(true),
			PublishCloudWatchMetricsEnabled: jsii.Bool(true),
			BytesScannedCutoffPerQuery:      jsii.Number(BytesScannedCutoff),
			EngineVersion:                   &awsathena.CfnWorkGroup_EngineVersionProperty{SelectedEngineVersion: jsii.String("Athena engine version 3")},
			ResultConfiguration: &awsathena.CfnWorkGroup_ResultConfigurationProperty{
				OutputLocation:          results,
				EncryptionConfiguration: &awsathena.CfnWorkGroup_EncryptionConfigurationProperty{EncryptionOption: jsii.String("SSE_S3")},
			},
		},
	})
}
