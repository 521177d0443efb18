package envconfig

import (
	"log/slog"

	"github.com/streamproc/streamproc/services/telemetry"
)

// Variables of the services' logs and EMF metrics.
const (
	// EnvLogLevel is debug, info, warn or error. Default: info.
	EnvLogLevel = "LOG_LEVEL"
	// EnvMetricsNamespace is the CloudWatch namespace of the EMF metrics. Default: telemetry.DefaultNamespace.
	EnvMetricsNamespace = "METRICS_NAMESPACE"
	// EnvMetricsInterval is how often the metrics are written (Go duration). Default: telemetry.DefaultFlushInterval.
	EnvMetricsInterval = "METRICS_INTERVAL"
)

// Telemetry is how a service logs and writes its metrics.
type Telemetry struct {
	// LogLevel filters the JSON logs (EnvLogLevel).
	LogLevel slog.Level
	// Metrics configures the EMF writer: Namespace (EnvMetricsNamespace) and FlushInterval (EnvMetricsInterval);
	// the service adds its dimensions.
	Metrics telemetry.MetricsConfig
}

// Telemetry reads the log level and the metrics' namespace and interval.
func (p *Parser) Telemetry() Telemetry {
	return Telemetry{
		LogLevel: p.Level(EnvLogLevel),
		Metrics: telemetry.MetricsConfig{
			Namespace:     p.String(EnvMetricsNamespace),
			FlushInterval: p.Duration(EnvMetricsInterval, telemetry.DefaultFlushInterval),
		},
	}
}
