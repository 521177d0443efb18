// Package scaler is the AWS-facing side of the shard autoscaler: it reads the stream's state, the CloudWatch
// metrics and its own action history (kept in the stream's tags), asks the policy package for a decision, carries
// it out through the Kinesis API, logs the decision as one JSON line and emits EMF metrics. The Lambda in
// lambda/autoscaler and the local runner both drive it through Scaler.Run.
package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
	"github.com/streamproc/streamproc/services/telemetry"
)

// Environment variables the Lambda reads (parsed in lambda/autoscaler's main; the CDK construct sets them).
const (
	// EnvStreamName names the stream to scale. Required.
	EnvStreamName = "AUTOSCALER_STREAM_NAME"
	// EnvMinShards is policy.Config.MinShards. Default: 1.
	EnvMinShards = "AUTOSCALER_MIN_SHARDS"
	// EnvMaxShards is policy.Config.MaxShards. Default: 16.
	EnvMaxShards = "AUTOSCALER_MAX_SHARDS"
	// EnvScaleUpUtilisation is policy.Config.ScaleUpUtilisation as a fraction (0.75). Default: 0.75.
	EnvScaleUpUtilisation = "AUTOSCALER_SCALE_UP_UTILISATION"
	// EnvScaleUpMinutes is policy.Config.ScaleUpMinutes. Default: 2.
	EnvScaleUpMinutes = "AUTOSCALER_SCALE_UP_MINUTES"
	// EnvTargetUtilisation is policy.Config.TargetUtilisation. Default: 0.70.
	EnvTargetUtilisation = "AUTOSCALER_TARGET_UTILISATION"
	// EnvScarceCallsTargetUtilisation is policy.Config.ScarceCallsTargetUtilisation. Default: 0.50.
	EnvScarceCallsTargetUtilisation = "AUTOSCALER_SCARCE_CALLS_TARGET_UTILISATION"
	// EnvScaleDownUtilisation is policy.Config.ScaleDownUtilisation. Default: 0.35.
	EnvScaleDownUtilisation = "AUTOSCALER_SCALE_DOWN_UTILISATION"
	// EnvScaleDownMinutes is policy.Config.ScaleDownMinutes. Default: 15.
	EnvScaleDownMinutes = "AUTOSCALER_SCALE_DOWN_MINUTES"
	// EnvScaleDownCooldown is policy.Config.ScaleDownCooldown as a Go duration ("15m"). Default: 15m.
	EnvScaleDownCooldown = "AUTOSCALER_SCALE_DOWN_COOLDOWN"
	// EnvScaleUpReserve is policy.Config.ScaleUpReserve. Default: 3.
	EnvScaleUpReserve = "AUTOSCALER_SCALE_UP_RESERVE"
	// EnvReshardDuration is policy.Config.ReshardDuration as a Go duration ("4m"). Default: 4m.
	EnvReshardDuration = "AUTOSCALER_RESHARD_DURATION"
	// EnvShardLevelMetrics is "true" or "false": read shard-level metrics for hot-shard splits and merges.
	// Default: true (the stack enables shard-level metrics).
	EnvShardLevelMetrics = "AUTOSCALER_SHARD_LEVEL_METRICS"
	// EnvDryRun is "true" or "false": decide and log but never reshard or write tags. Default: false.
	EnvDryRun = "AUTOSCALER_DRY_RUN"
)

// Metric names the autoscaler emits (EMF, namespace MetricsNamespace, dimension MetricsDimensionStream).
const (
	// MetricOpenShardCount is the open shard count seen by each invocation.
	MetricOpenShardCount = "OpenShardCount"
	// MetricTargetShardCount is the shard count each decision aims for.
	MetricTargetShardCount = "TargetShardCount"
	// MetricScalingActions counts resharding calls Kinesis accepted (0 when none, so alarms see data).
	MetricScalingActions = "ScalingActions"
	// MetricsNamespace is the CloudWatch namespace of those metrics.
	MetricsNamespace = telemetry.DefaultNamespace
	// MetricsDimensionStream is the dimension naming the stream.
	MetricsDimensionStream = "StreamName"
)

// kinesisNamespace is where Kinesis publishes its stream and shard metrics.
const kinesisNamespace = "AWS/Kinesis"

// KinesisAPI is the part of the Kinesis client the scaler calls.
type KinesisAPI interface {
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	ListStreamConsumers(context.Context, *kinesis.ListStreamConsumersInput, ...func(*kinesis.Options)) (*kinesis.ListStreamConsumersOutput, error)
	ListTagsForStream(context.Context, *kinesis.ListTagsForStreamInput, ...func(*kinesis.Options)) (*kinesis.ListTagsForStreamOutput, error)
	AddTagsToStream(context.Context, *kinesis.AddTagsToStreamInput, ...func(*kinesis.Options)) (*kinesis.AddTagsToStreamOutput, error)
	UpdateShardCount(context.Context, *kinesis.UpdateShardCountInput, ...func(*kinesis.Options)) (*kinesis.UpdateShardCountOutput, error)
	SplitShard(context.Context, *kinesis.SplitShardInput, ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error)
	MergeShards(context.Context, *kinesis.MergeShardsInput, ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error)
}

// CloudWatchAPI is the part of the CloudWatch client the scaler calls.
type CloudWatchAPI interface {
	GetMetricData(context.Context, *cloudwatch.GetMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// Config configures a Scaler. StreamName is required; every other zero value means its documented default.
type Config struct {
	// StreamName is the stream to scale.
	StreamName string
	// Policy tunes the decisions. Default: policy defaults.
	Policy policy.Config
	// ShardLevelMetrics reads per-shard metrics (hot-shard splits, cold merges). Default: false (the Lambda's
	// environment default is true, see EnvShardLevelMetrics).
	ShardLevelMetrics bool
	// DryRun decides and logs but never reshards or writes the history.
	DryRun bool
}

// Scaler runs one autoscaling decision per Run call. It keeps no state between calls: the history is in the tags.
type Scaler struct {
	cfg     Config
	policy  *policy.Policy
	kinesis KinesisAPI
	cw      CloudWatchAPI
	log     *slog.Logger
	metrics *telemetry.Metrics
}

// New validates cfg and returns a Scaler. metrics may be nil (no EMF output).
func New(cfg Config, kin KinesisAPI, cw CloudWatchAPI, log *slog.Logger, metrics *telemetry.Metrics) (*Scaler, error) {
	if cfg.StreamName == "" {
		return nil, errors.New("scaler: StreamName is empty")
	}
	if kin == nil || cw == nil || log == nil {
		return nil, errors.New("scaler: Kinesis client, CloudWatch client and logger are required")
	}
	p, err := policy.New(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("scaler: %w", err)
	}
	return &Scaler{cfg: cfg, policy: p, kinesis: kin, cw: cw, log: log, metrics: metrics}, nil
}

// Outcome is what one Run did.
type Outcome struct {
	policy.Decision
	// Executed is true when Kinesis accepted the action.
	Executed bool
	// Skipped says why no decision was made (the stream is not ACTIVE), or why an action was not carried out
	// (dry run, Kinesis refused it); empty otherwise.
	Skipped string
}

// Run makes one decision at time now. trigger says what invoked it ("schedule", "alarm ...") for the log line.
func (s *Scaler) Run(ctx context.Context, now time.Time, trigger string) (Outcome, error) {
	out, err := s.run(ctx, now)
	if err != nil {
		return out, err
	}
	s.report(trigger, out)
	return out, nil
}

func (s *Scaler) run(ctx context.Context, now time.Time) (Outcome, error) {
	desc, err := s.describeStream(ctx)
	if err != nil {
		return Outcome{}, err
	}
	if desc.StreamStatus != types.StreamStatusActive {
		open := int(aws.ToInt32(desc.OpenShardCount))
		return Outcome{
			Decision: policy.Decision{Action: policy.ActionNone, CurrentShardCount: open, TargetShardCount: open},
			Skipped:  fmt.Sprintf("stream is %s; waiting for the running operation to finish", desc.StreamStatus),
		}, nil
	}
	history, err := s.settledHistory(ctx, now)
	if err != nil {
		return Outcome{}, err
	}
	in, err := s.policyInput(ctx, now, aws.ToString(desc.StreamARN), history)
	if err != nil {
		return Outcome{}, err
	}
	return s.carryOut(ctx, now, history, s.policy.Decide(in))
}

func (s *Scaler) describeStream(ctx context.Context) (*types.StreamDescriptionSummary, error) {
	sum, err := s.kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.cfg.StreamName)})
	if err != nil {
		return nil, fmt.Errorf("describe stream %s: %w", s.cfg.StreamName, err)
	}
	return sum.StreamDescriptionSummary, nil
}

// settledHistory reads the history from the tags and, the stream being ACTIVE, marks the last action settled at now
// (storing that, unless this is a dry run) if it was not yet.
func (s *Scaler) settledHistory(ctx context.Context, now time.Time) (policy.History, error) {
	history, err := s.readHistory(ctx)
	if err != nil {
		return policy.History{}, err
	}
	settled, changed := history.MarkSettled(now)
	if !changed {
		return history, nil
	}
	if s.cfg.DryRun {
		// A dry run never writes the tags, so it cannot remember when it first saw the stream ACTIVE: settling at now
		// on every run would ignore every minute after a past live action forever. It counts the minutes from the
		// action on instead.
		settled, _ = history.MarkSettled(history.LastAction)
		return settled, nil
	}
	if err := s.writeHistory(ctx, settled); err != nil {
		return policy.History{}, err
	}
	return settled, nil
}

// policyInput gathers what the policy decides from: the open shards, the metrics (with those of each active
// fan-out consumer of the stream with ARN arn), now and the history.
func (s *Scaler) policyInput(ctx context.Context, now time.Time, arn string, history policy.History) (policy.Input, error) {
	shards, parents, err := s.listShards(ctx)
	if err != nil {
		return policy.Input{}, err
	}
	consumers, err := s.consumers(ctx, arn)
	if err != nil {
		return policy.Input{}, err
	}
	in, err := s.metricInput(ctx, now, shards, parents, consumers)
	if err != nil {
		return policy.Input{}, err
	}
	in.Now, in.History = now, history
	return in, nil
}

// carryOut makes the action of d, unless it is none or this is a dry run, and records it in the history first.
func (s *Scaler) carryOut(ctx context.Context, now time.Time, history policy.History, d policy.Decision) (Outcome, error) {
	out := Outcome{Decision: d}
	if d.Action == policy.ActionNone {
		return out, nil
	}
	if s.cfg.DryRun {
		out.Skipped = "dry run"
		return out, nil
	}
	// The action is recorded before it is made: tags are written while the stream is still ACTIVE (Kinesis lists
	// ResourceInUseException for AddTagsToStream, and after the call the stream is UPDATING for minutes), and a
	// failure between the two leaves one call too many counted, the safe side of the daily limit and the cool-down.
	if err := s.writeHistory(ctx, history.RecordDecision(d, now)); err != nil {
		return out, fmt.Errorf("record %s before making it: %w", d.Action, err)
	}
	if err := s.execute(ctx, d); err != nil {
		return s.afterFailedAction(ctx, out, history, err)
	}
	out.Executed = true
	return out, nil
}

// afterFailedAction handles err from making out's action. When Kinesis refused it, the record is taken back
// (history is as it was before) and a refusal that retrying cannot help is reported as skipped, not as an error.
func (s *Scaler) afterFailedAction(ctx context.Context, out Outcome, history policy.History, err error) (Outcome, error) {
	if !refusedByKinesis(err) {
		// A timeout or a server error leaves it unknown whether Kinesis started the operation: keep the record.
		return out, fmt.Errorf("%w (recorded as made: Kinesis may have started it)", err)
	}
	if werr := s.writeHistory(ctx, history); werr != nil {
		return out, errors.Join(err, fmt.Errorf("take back the record of the refused %s: %w", out.Action, werr))
	}
	var inUse *types.ResourceInUseException
	var limit *types.LimitExceededException
	switch {
	case errors.As(err, &inUse):
		out.Skipped = "Kinesis refused: another resharding operation is running"
		return out, nil
	case errors.As(err, &limit):
		// The history undercounts (calls made outside the autoscaler, or a lost tag write); Kinesis is the
		// authority, and retrying within this invocation cannot help.
		out.Skipped = "Kinesis refused: " + err.Error()
		return out, nil
	}
	return out, err
}

// refusedByKinesis reports whether Kinesis answered a call with a client error (4xx): it refused the operation,
// so nothing was started.
func refusedByKinesis(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorFault() == smithy.FaultClient
}

func (s *Scaler) execute(ctx context.Context, d policy.Decision) error {
	name := aws.String(s.cfg.StreamName)
	var err error
	switch d.Action {
	case policy.ActionUpdateShardCount:
		_, err = s.kinesis.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
			StreamName: name, TargetShardCount: aws.Int32(int32(d.TargetShardCount)), ScalingType: types.ScalingTypeUniformScaling,
		})
	case policy.ActionSplitShard:
		_, err = s.kinesis.SplitShard(ctx, &kinesis.SplitShardInput{
			StreamName: name, ShardToSplit: aws.String(d.ShardID), NewStartingHashKey: aws.String(d.NewStartingHashKey),
		})
	case policy.ActionMergeShards:
		_, err = s.kinesis.MergeShards(ctx, &kinesis.MergeShardsInput{
			StreamName: name, ShardToMerge: aws.String(d.ShardID), AdjacentShardToMerge: aws.String(d.AdjacentShardID),
		})
	default:
		return fmt.Errorf("unknown action %q", d.Action)
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %w", d.Action, s.cfg.StreamName, err)
	}
	return nil
}

// report logs the decision as one JSON line and emits the EMF metrics.
func (s *Scaler) report(trigger string, out Outcome) {
	level := slog.LevelInfo
	if out.Action != policy.ActionNone && !out.Executed {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(context.Background(), level, "scaling decision",
		slog.String(telemetry.LogKeyStream, s.cfg.StreamName),
		slog.String("trigger", trigger),
		slog.String("action", string(out.Action)),
		slog.String("rule", string(out.Rule)),
		slog.String("reason", out.Reason),
		slog.Int("current_shard_count", out.CurrentShardCount),
		slog.Int("target_shard_count", out.TargetShardCount),
		slog.String(telemetry.LogKeyShardID, out.ShardID),
		slog.String("adjacent_shard_id", out.AdjacentShardID),
		slog.String("new_starting_hash_key", out.NewStartingHashKey),
		slog.Float64("utilisation", out.Utilisation),
		slog.Int("update_calls_used_24h", out.UpdateCallsUsed),
		slog.Bool("executed", out.Executed),
		slog.String("skipped", out.Skipped),
		slog.Bool("dry_run", s.cfg.DryRun),
	)
	if s.metrics == nil {
		return
	}
	s.metrics.Observe(MetricOpenShardCount, telemetry.UnitCount, float64(out.CurrentShardCount))
	s.metrics.Observe(MetricTargetShardCount, telemetry.UnitCount, float64(out.TargetShardCount))
	actions := 0.0
	if out.Executed {
		actions = 1
	}
	s.metrics.Add(MetricScalingActions, telemetry.UnitCount, actions)
}

func (s *Scaler) readHistory(ctx context.Context) (policy.History, error) {
	tags := map[string]string{}
	var start *string
	for {
		out, err := s.kinesis.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String(s.cfg.StreamName), ExclusiveStartTagKey: start})
		if err != nil {
			return policy.History{}, fmt.Errorf("list tags of %s: %w", s.cfg.StreamName, err)
		}
		for _, t := range out.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		if !aws.ToBool(out.HasMoreTags) || len(out.Tags) == 0 {
			break
		}
		start = out.Tags[len(out.Tags)-1].Key
	}
	h, err := DecodeHistory(tags)
	if err != nil {
		return policy.History{}, fmt.Errorf("stream %s: %w", s.cfg.StreamName, err)
	}
	return h, nil
}

func (s *Scaler) writeHistory(ctx context.Context, h policy.History) error {
	_, err := s.kinesis.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String(s.cfg.StreamName), Tags: EncodeHistory(h)})
	if err != nil {
		return fmt.Errorf("save history tags on %s: %w", s.cfg.StreamName, err)
	}
	return nil
}

// listShards returns the stream's open shards and the closed shards that are their parents (a new shard borrows
// their metrics from before it existed), with hash ranges and parents.
func (s *Scaler) listShards(ctx context.Context) (open, parents []policy.Shard, err error) {
	closed := map[string]policy.Shard{}
	in := &kinesis.ListShardsInput{StreamName: aws.String(s.cfg.StreamName)}
	for {
		out, err := s.kinesis.ListShards(ctx, in)
		if err != nil {
			return nil, nil, fmt.Errorf("list shards of %s: %w", s.cfg.StreamName, err)
		}
		for _, sh := range out.Shards {
			ps := policy.Shard{
				ID: aws.ToString(sh.ShardId), ParentShardID: aws.ToString(sh.ParentShardId),
				AdjacentParentShardID: aws.ToString(sh.AdjacentParentShardId),
			}
			if sh.HashKeyRange != nil {
				ps.StartingHashKey, _ = new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
				ps.EndingHashKey, _ = new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
			}
			if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
				closed[ps.ID] = ps
			} else {
				open = append(open, ps)
			}
		}
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	seen := map[string]bool{}
	for _, sh := range open {
		for _, id := range []string{sh.ParentShardID, sh.AdjacentParentShardID} {
			if p, ok := closed[id]; ok && !seen[id] {
				parents, seen[id] = append(parents, p), true
			}
		}
	}
	return open, parents, nil
}

// consumers returns the names of the stream's active enhanced fan-out consumers.
func (s *Scaler) consumers(ctx context.Context, arn string) ([]string, error) {
	var names []string
	in := &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn)}
	for {
		out, err := s.kinesis.ListStreamConsumers(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list consumers of %s: %w", s.cfg.StreamName, err)
		}
		for _, c := range out.Consumers {
			if c.ConsumerStatus == types.ConsumerStatusActive {
				names = append(names, aws.ToString(c.ConsumerName))
			}
		}
		if out.NextToken == nil {
			return names, nil
		}
		in = &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn), NextToken: out.NextToken}
	}
}

// metricKind is which policy.Minute field a query fills.
type metricKind int

const (
	kindBytes metricKind = iota
	kindRecords
	kindThrottled
	kindGetRecords
	kindFanOut
)

// query is one GetMetricData query and what its datapoints fill.
type query struct {
	kind  metricKind
	shard string // "" for stream-level
	q     cwtypes.MetricDataQuery
}

// maxQueriesPerCall is GetMetricData's limit on queries per request.
const maxQueriesPerCall = 500

// metricInput reads the metrics of the stream (and, with ShardLevelMetrics, of each open shard and its closed
// parents) over the minutes the policy looks at, and returns them as the policy's input with the shards; Now and
// History are left to the caller.
func (s *Scaler) metricInput(ctx context.Context, now time.Time, shards, parents []policy.Shard, consumers []string) (policy.Input, error) {
	cfg := s.policy.Config()
	end := now.Truncate(time.Minute)
	start := end.Add(-time.Duration(cfg.ScaleDownMinutes)*time.Minute - cfg.MaxDataAge - 5*time.Minute)
	qs := s.metricQueries(append(slices.Clip(shards), parents...), consumers)
	results, err := s.metricData(ctx, qs, start, end)
	if err != nil {
		return policy.Input{}, err
	}
	in := policy.Input{Shards: shards}
	if s.cfg.ShardLevelMetrics {
		in.ShardMinutes = map[string][]policy.Minute{}
		in.ClosedShards = parents
	}
	for k, e := range foldMinutes(qs, results) {
		e.m.WriteKnown = e.bytes && e.records
		if k.shard == "" {
			in.Stream = append(in.Stream, e.m)
		} else {
			in.ShardMinutes[k.shard] = append(in.ShardMinutes[k.shard], e.m)
		}
	}
	return in, nil
}

// metricQueries are the per-minute sums the policy reads: the stream's writes, throttling, GetRecords bytes and each
// fan-out consumer's bytes, and with ShardLevelMetrics each shard's writes and throttling.
func (s *Scaler) metricQueries(shards []policy.Shard, consumers []string) []query {
	var qs []query
	add := func(kind metricKind, shard, metric string, dims ...cwtypes.Dimension) {
		qs = append(qs, query{kind: kind, shard: shard, q: cwtypes.MetricDataQuery{
			Id: aws.String("m" + strconv.Itoa(len(qs))),
			MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String(kinesisNamespace), MetricName: aws.String(metric), Dimensions: dims},
				Period: aws.Int32(60), Stat: aws.String("Sum"),
			},
			ReturnData: aws.Bool(true),
		}})
	}
	stream := cwtypes.Dimension{Name: aws.String("StreamName"), Value: aws.String(s.cfg.StreamName)}
	add(kindBytes, "", "IncomingBytes", stream)
	add(kindRecords, "", "IncomingRecords", stream)
	add(kindThrottled, "", "WriteProvisionedThroughputExceeded", stream)
	add(kindGetRecords, "", "GetRecords.Bytes", stream)
	for _, c := range consumers {
		add(kindFanOut, "", "SubscribeToShardEvent.Bytes", stream, cwtypes.Dimension{Name: aws.String("ConsumerName"), Value: aws.String(c)})
	}
	if s.cfg.ShardLevelMetrics {
		for _, sh := range shards {
			dim := cwtypes.Dimension{Name: aws.String("ShardId"), Value: aws.String(sh.ID)}
			add(kindBytes, sh.ID, "IncomingBytes", stream, dim)
			add(kindRecords, sh.ID, "IncomingRecords", stream, dim)
			add(kindThrottled, sh.ID, "WriteProvisionedThroughputExceeded", stream, dim)
		}
	}
	return qs
}

// metricData runs the queries from start to end, at most maxQueriesPerCall per request, and returns the results of
// every page.
func (s *Scaler) metricData(ctx context.Context, qs []query, start, end time.Time) ([]cwtypes.MetricDataResult, error) {
	var results []cwtypes.MetricDataResult
	for batch := range slices.Chunk(qs, maxQueriesPerCall) {
		in := &cloudwatch.GetMetricDataInput{StartTime: aws.Time(start), EndTime: aws.Time(end), ScanBy: cwtypes.ScanByTimestampAscending}
		for _, q := range batch {
			in.MetricDataQueries = append(in.MetricDataQueries, q.q)
		}
		for {
			out, err := s.cw.GetMetricData(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("get metric data for %s: %w", s.cfg.StreamName, err)
			}
			results = append(results, out.MetricDataResults...)
			if out.NextToken == nil {
				break
			}
			in.NextToken = out.NextToken
		}
	}
	return results, nil
}

// minuteKey is one minute of the stream (shard "") or of one shard.
type minuteKey struct {
	shard  string
	minute int64
}

// minuteSums is one minute being filled from the results, and which of the two write metrics it had.
type minuteSums struct {
	m              policy.Minute
	bytes, records bool
}

// foldMinutes files every datapoint of results into the minute of the stream or shard its query is for.
func foldMinutes(qs []query, results []cwtypes.MetricDataResult) map[minuteKey]*minuteSums {
	byID := make(map[string]query, len(qs))
	for _, q := range qs {
		byID[aws.ToString(q.q.Id)] = q
	}
	minutes := map[minuteKey]*minuteSums{}
	for _, r := range results {
		q, ok := byID[aws.ToString(r.Id)]
		if !ok {
			continue
		}
		for j, ts := range r.Timestamps[:min(len(r.Timestamps), len(r.Values))] {
			ts = ts.Truncate(time.Minute)
			k := minuteKey{q.shard, ts.Unix()}
			e := minutes[k]
			if e == nil {
				e = &minuteSums{m: policy.Minute{Start: ts.UTC()}}
				minutes[k] = e
			}
			e.add(q.kind, r.Values[j])
		}
	}
	return minutes
}

// add files value v of a metric of the given kind.
func (e *minuteSums) add(kind metricKind, v float64) {
	switch kind {
	case kindBytes:
		e.m.IncomingBytes, e.bytes = v, true
	case kindRecords:
		e.m.IncomingRecords, e.records = v, true
	case kindThrottled:
		e.m.ThrottledRecords = v
	case kindGetRecords:
		e.m.GetRecordsBytes = v
	case kindFanOut:
		// Each fan-out consumer has its own read limit, so only the busiest one counts.
		e.m.FanOutBytes = max(e.m.FanOutBytes, v)
	}
}
