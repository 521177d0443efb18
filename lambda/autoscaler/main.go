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
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
	"github.com/streamproc/streamproc/lambda/autoscaler/scaler"
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
	var errs []error
	cfg := scaler.Config{ShardLevelMetrics: true}
	cfg.StreamName, _ = lookup(scaler.EnvStreamName)
	if cfg.StreamName == "" {
		errs = append(errs, fmt.Errorf("%s is required (the name of the stream to scale)", scaler.EnvStreamName))
	}
	intVar := func(name string, dst *int) {
		if v, ok := lookup(name); ok && v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a whole number >= 0", name, v))
				return
			}
			*dst = n
		}
	}
	floatVar := func(name string, dst *float64) {
		if v, ok := lookup(name); ok && v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 || f > 1 {
				errs = append(errs, fmt.Errorf("%s=%q: want a fraction in (0, 1], such as 0.7", name, v))
				return
			}
			*dst = f
		}
	}
	boolVar := func(name string, dst *bool) {
		if v, ok := lookup(name); ok && v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want true or false", name, v))
				return
			}
			*dst = b
		}
	}
	p := &cfg.Policy
	intVar(scaler.EnvMinShards, &p.MinShards)
	intVar(scaler.EnvMaxShards, &p.MaxShards)
	floatVar(scaler.EnvScaleUpUtilisation, &p.ScaleUpUtilisation)
	intVar(scaler.EnvScaleUpMinutes, &p.ScaleUpMinutes)
	floatVar(scaler.EnvTargetUtilisation, &p.TargetUtilisation)
	floatVar(scaler.EnvScarceCallsTargetUtilisation, &p.ScarceCallsTargetUtilisation)
	floatVar(scaler.EnvScaleDownUtilisation, &p.ScaleDownUtilisation)
	intVar(scaler.EnvScaleDownMinutes, &p.ScaleDownMinutes)
	intVar(scaler.EnvScaleUpReserve, &p.ScaleUpReserve)
	if v, ok := lookup(scaler.EnvScaleDownCooldown); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration such as 15m", scaler.EnvScaleDownCooldown, v))
		}
		p.ScaleDownCooldown = d
	}
	boolVar(scaler.EnvShardLevelMetrics, &cfg.ShardLevelMetrics)
	boolVar(scaler.EnvDryRun, &cfg.DryRun)
	if len(errs) == 0 {
		// Cross-field checks (min <= max, thresholds in order) live in the policy.
		if _, err := policy.New(cfg.Policy); err != nil {
			errs = append(errs, err)
		}
	}
	return cfg, errors.Join(errs...)
}
