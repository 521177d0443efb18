package dashboard

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	cw "github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamproc/streamproc/services/kcl"
)

// leaseBalanceRow is the row that shows how the consumer workers share the load: the load of each worker (a search
// over the worker id dimension, since tasks come and go) and the leases moved between them by graceful hand-off.
// worker makes a metric the consumer service writes, with consumerDims as its dimensions.
func leaseBalanceRow(namespace string, consumerDims map[string]*string, worker func(name, stat, label string) cw.Metric) *[]cw.IWidget {
	names := slices.Sorted(maps.Keys(consumerDims))
	parts := []*string{jsii.String(fmt.Sprintf(`SEARCH('{%s,%s,%s} MetricName="%s"`, namespace, strings.Join(names, ","),
		kcl.DimensionWorkerID, kcl.MetricWorkerLoad))}
	for _, n := range names {
		parts = append(parts, jsii.String(fmt.Sprintf(` %s="`, n)), consumerDims[n], jsii.String(`"`))
	}
	parts = append(parts, jsii.String(`', 'Average', 60)`))
	loads := cw.NewMathExpression(&cw.MathExpressionProps{
		Expression: awscdk.Fn_Join(jsii.String(""), &parts), // a line per worker, labelled with its id
		Period:     awscdk.Duration_Minutes(jsii.Number(1)),
	})
	return &[]cw.IWidget{
		cw.NewGraphWidget(&cw.GraphWidgetProps{
			Title: jsii.String("Load per worker (KB/s of its leases)"), Left: &[]cw.IMetric{loads},
			Width: jsii.Number(12), Height: jsii.Number(6),
		}),
		cw.NewGraphWidget(&cw.GraphWidgetProps{
			Title: jsii.String("Lease moves (graceful hand-offs)"),
			Left: &[]cw.IMetric{
				worker(kcl.MetricLeaseMoves, "Sum", "Leases moved to balance the load"),
				worker(kcl.MetricHandoffTimeouts, "Sum", "Hand-offs timed out (taken)"),
			},
			Width: jsii.Number(12), Height: jsii.Number(6),
		}),
	}
}
