// convert.go: the config converter that fits any user config to Lambda's lifecycle.
package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/confmap"
)

// lambdaConverter, applied after the config is resolved:
//   - turns every exporter's own queue off, so a drained batch is a delivered one;
//   - fits every exporter's retry_on_failure into the drain timeout (retryWithin);
//   - puts the lambdabuffer processor last in every pipeline;
//   - sets service.telemetry.metrics.level to none unless the config sets a level,
//     so the collector serves no metrics endpoint of its own (default :8888);
//   - sets service.telemetry.logs.level from OPENTELEMETRY_EXTENSION_LOG_LEVEL.
type lambdaConverter struct{}

func newLambdaConverterFactory() confmap.ConverterFactory {
	return confmap.NewConverterFactory(func(confmap.ConverterSettings) confmap.Converter { return lambdaConverter{} })
}

// queueKeys: the exporters of ours that queue, and where their queue is switched off.
// All three also retry, under retry_on_failure.
var queueKeys = map[string]string{
	"otlp":                  "sending_queue::enabled",
	"otlphttp":              "sending_queue::enabled",
	"prometheusremotewrite": "remote_write_queue::enabled",
}

// retryWithin bounds an exporter's retries by the drain timeout. Their defaults (first
// retry after 5 s, giving up after 5 min) would spend every drain waiting out one 503,
// and the drain would then cut the send short. Now a batch is retried a few times
// within the drain and, if the backend still refuses it, dropped before the deadline.
func retryWithin(drain time.Duration) map[string]any {
	return map[string]any{
		"initial_interval": (drain / 5).String(),
		"max_interval":     (drain / 2).String(),
		"max_elapsed_time": drain.String(),
	}
}

func (lambdaConverter) Convert(_ context.Context, conf *confmap.Conf) error {
	out := map[string]any{}
	drainTimeout, _ := drainTimeoutValue(os.Getenv(drainTimeoutEnv)) // the extension warns
	if exporters, ok := conf.Get("exporters").(map[string]any); ok {
		for id := range exporters {
			kind, _, _ := strings.Cut(id, "/")
			if key, queues := queueKeys[kind]; queues {
				out["exporters::"+id+"::"+key] = false
				for k, v := range retryWithin(drainTimeout) {
					out["exporters::"+id+"::retry_on_failure::"+k] = v
				}
			}
		}
	}
	if pipelines, ok := conf.Get("service::pipelines").(map[string]any); ok && len(pipelines) > 0 {
		name := bufferProcessorType.String()
		out["processors::"+name] = map[string]any{}
		for id := range pipelines {
			key := "service::pipelines::" + id + "::processors"
			procs := stringList(conf.Get(key))
			if !slices.Contains(procs, any(name)) {
				procs = append(procs, name)
			}
			out[key] = procs
		}
	}
	if !conf.IsSet("service::telemetry::metrics::level") {
		out["service::telemetry::metrics::level"] = "none"
	}
	if lv, ok := collectorLogLevel(os.Getenv(logLevelEnv)); ok {
		out["service::telemetry::logs::level"] = lv
	}
	return conf.Merge(confmap.NewFromStringMap(out))
}

func stringList(v any) []any {
	list, _ := v.([]any)
	return slices.Clone(list)
}

// collectorLogLevel maps OPENTELEMETRY_EXTENSION_LOG_LEVEL to the collector's level
// names; an unset or unknown value leaves the config's own level (logging.go warns).
func collectorLogLevel(v string) (string, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	switch v {
	case "debug", "info", "warn", "error", "dpanic", "panic", "fatal":
		return v, true
	case "warning":
		return "warn", true
	}
	return "", false
}
