// Package telemetry sets up the services' structured logging (log/slog, JSON) and writes
// metrics as CloudWatch embedded metric format (EMF) lines, so CloudWatch Logs extracts them
// from the container logs without any PutMetricData call.
//
// Logs use stable keys (LogKeyStream, LogKeyShardID, LogKeyWorkerID) so that queries and
// dashboards do not break when a message changes. Metric names live in the package that
// emits them; this package only knows how to aggregate and write them.
package telemetry
