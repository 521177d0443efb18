// Command autoscaler is the shard autoscaler Lambda (provided.al2023, arm64). It is invoked every minute by an
// EventBridge schedule and at once by the throttling alarm's state-change event; each invocation makes one scaling
// decision through the scaler package. Configuration comes from the environment (names in package scaler); bad
// configuration stops the function at start-up with a message that names the variable.
//
// Build as the CDK bundling does:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./lambda/autoscaler
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
	"github.com/streamproc/streamproc/lambda/autoscaler/scaler"
	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/telemetry"
)

func main() {
	log := telemetry.NewLogger(os.Stdout, slog.LevelInfo)
	cfg, err := configFromEnv(os.LookupEnv)
	if err != nil {
		log.Error("bad configuration", telemetry.LogKeyError, err.Error())
		os.Exit(1)
	}
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("load AWS configuration", telemetry.LogKeyError, err.Error())
		os.Exit(1)
	}
	h, err := newHandler(cfg, kinesis.NewFromConfig(awsCfg), cloudwatch.NewFromConfig(awsCfg), os.Stdout, time.Now)
	if err != nil {
		log.Error("bad configuration", telemetry.LogKeyError, err.Error())
		os.Exit(1)
	}
	lambda.Start(h.handle)
}

// newHandler wires a scaler whose decision log lines and EMF metric lines both go to out (the function's log
// stream, from which CloudWatch extracts the metrics).
func newHandler(cfg scaler.Config, kin scaler.KinesisAPI, cw scaler.CloudWatchAPI, out io.Writer, now func() time.Time) (*handler, error) {
	metrics, err := telemetry.NewMetrics(out, telemetry.MetricsConfig{
		Namespace:  scaler.MetricsNamespace,
		Dimensions: []telemetry.Dimension{{Name: scaler.MetricsDimensionStream, Value: cfg.StreamName}},
	})
	if err != nil {
		return nil, fmt.Errorf("metrics writer: %w", err)
	}
	s, err := scaler.New(cfg, kin, cw, telemetry.NewLogger(out, slog.LevelInfo), metrics)
	if err != nil {
		return nil, err
	}
	return &handler{scaler: s, metrics: metrics, now: now}, nil
}

// runner is what the handler needs from scaler.Scaler.
type runner interface {
	Run(ctx context.Context, now time.Time, trigger string) (scaler.Outcome, error)
}

// flusher writes the invocation's EMF metrics.
type flusher interface{ Flush() error }

type handler struct {
	scaler  runner
	metrics flusher
	now     func() time.Time
}

// event is the part of an EventBridge event the handler reads. Scheduled events come with source "aws.events" and
// detail-type "Scheduled Event"; alarm state changes with source "aws.cloudwatch" and detail-type
// "CloudWatch Alarm State Change".
type event struct {
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
	Detail     struct {
		AlarmName string `json:"alarmName"`
		State     struct {
			Value string `json:"value"`
		} `json:"state"`
	} `json:"detail"`
}

// trigger names what invoked the function. Any JSON object is accepted (a manual test invoke sends "{}").
func trigger(raw json.RawMessage) (string, error) {
	var e event
	if err := json.Unmarshal(raw, &e); err != nil {
		return "", fmt.Errorf("event is not a JSON object: %w", err)
	}
	switch {
	case e.Source == "aws.events" && e.DetailType == "Scheduled Event":
		return "schedule", nil
	case e.Source == "aws.cloudwatch" && e.DetailType == "CloudWatch Alarm State Change":
		return fmt.Sprintf("alarm %s %s", e.Detail.AlarmName, e.Detail.State.Value), nil
	case e.Source != "":
		return fmt.Sprintf("event %s %s", e.Source, e.DetailType), nil
	default:
		return "manual", nil
	}
}

func (h *handler) handle(ctx context.Context, raw json.RawMessage) error {
	why, err := trigger(raw)
	if err != nil {
		return err
	}
	_, runErr := h.scaler.Run(ctx, h.now(), why)
	return errors.Join(runErr, h.metrics.Flush())
}

// configFromEnv reads the scaler configuration; every problem is reported with the variable's name.
func configFromEnv(lookup func(string) (string, bool)) (scaler.Config, error) {
	p := envconfig.NewParser(lookup)
	const most = 1 << 20 // no bound of its own: the policy checks the values against each other
	cfg := scaler.Config{
		StreamName: p.Required(scaler.EnvStreamName, "the name of the stream to scale"),
		Policy: policy.Config{
			MinShards:                    p.Int(scaler.EnvMinShards, 0, 0, most),
			MaxShards:                    p.Int(scaler.EnvMaxShards, 0, 0, most),
			ScaleUpUtilisation:           p.Fraction(scaler.EnvScaleUpUtilisation, 0),
			ScaleUpMinutes:               p.Int(scaler.EnvScaleUpMinutes, 0, 0, most),
			TargetUtilisation:            p.Fraction(scaler.EnvTargetUtilisation, 0),
			ScarceCallsTargetUtilisation: p.Fraction(scaler.EnvScarceCallsTargetUtilisation, 0),
			ScaleDownUtilisation:         p.Fraction(scaler.EnvScaleDownUtilisation, 0),
			ScaleDownMinutes:             p.Int(scaler.EnvScaleDownMinutes, 0, 0, most),
			ScaleDownCooldown:            p.Duration(scaler.EnvScaleDownCooldown, 0),
			ScaleUpReserve:               p.Int(scaler.EnvScaleUpReserve, 0, 0, most),
			ReshardDuration:              p.Duration(scaler.EnvReshardDuration, 0),
		},
		ShardLevelMetrics: p.Bool(scaler.EnvShardLevelMetrics, true),
		DryRun:            p.Bool(scaler.EnvDryRun, false),
	}
	if err := p.Err(); err != nil {
		return cfg, err
	}
	// Cross-field checks (min <= max, thresholds in order) live in the policy; its zero values are its defaults.
	if _, err := policy.New(cfg.Policy); err != nil {
		return cfg, err
	}
	return cfg, nil
}
