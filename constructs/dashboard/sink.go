package dashboard

import (
	"maps"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	cw "github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamproc/streamproc/services/s3sink"
)

// sinkWidgets is the dashboard's row for the consumer's S3 sink (services/s3sink's metrics, with the consumer's
// dimensions): objects and records landed, upload latency with errors and adoptions, bytes and why objects were
// flushed.
func sinkWidgets(namespace string, consumerDims map[string]*string) []cw.IWidget {
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	metric := func(name, stat, label string, extra map[string]*string) cw.IMetric {
		dims := maps.Clone(consumerDims)
		maps.Copy(dims, extra)
		return cw.NewMetric(&cw.MetricProps{Namespace: jsii.String(namespace), MetricName: jsii.String(name),
			DimensionsMap: &dims, Statistic: jsii.String(stat), Period: minute, Label: jsii.String(label)})
	}
	graph := func(title string, left, right []cw.IMetric) cw.IWidget {
		return cw.NewGraphWidget(&cw.GraphWidgetProps{Title: jsii.String(title), Left: &left, Right: &right,
			Width: jsii.Number(8), Height: jsii.Number(6)})
	}
	var reasons []cw.IMetric
	for _, r := range []string{s3sink.FlushSize, s3sink.FlushAge, s3sink.FlushShardEnd, s3sink.FlushShutdown, s3sink.FlushLeaseLost} {
		reasons = append(reasons, metric(s3sink.MetricFlushReason, "Sum", "Flushed: "+r,
			map[string]*string{s3sink.DimensionFlushReason: jsii.String(r)}))
	}
	return []cw.IWidget{
		graph("Lake: objects and records written",
			[]cw.IMetric{metric(s3sink.MetricObjectsWritten, "Sum", "Objects written", nil)},
			[]cw.IMetric{metric(s3sink.MetricRecordsWritten, "Sum", "Records written", nil)}),
		graph("Lake: upload latency (ms), errors and adoptions",
			[]cw.IMetric{metric(s3sink.MetricUploadLatency, "p50", "Upload p50", nil), metric(s3sink.MetricUploadLatency, "p99", "Upload p99", nil)},
			[]cw.IMetric{metric(s3sink.MetricUploadErrors, "Sum", "S3 errors (retried)", nil),
				metric(s3sink.MetricObjectsAdopted, "Sum", "Objects adopted", nil)}),
		graph("Lake: bytes written and flush reasons",
			[]cw.IMetric{metric(s3sink.MetricBytesWritten, "Sum", "Bytes written", nil)}, reasons),
	}
}
