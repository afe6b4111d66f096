// components.go: the collector's component set, the only list to edit.
package main

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/awsemfexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/awsxrayexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/sigv4authextension"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/loggingexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
)

// components is ADOT collector 0.35.0's Lambda set (one receiver, the exporters
// awsxray, awsemf, prometheusremotewrite, logging, otlp, otlphttp, the extension
// sigv4auth) plus the debug exporter that replaced logging upstream, our
// lambdabuffer processor, which the config converter places in every pipeline, and our
// telemetryapi receiver (function, extension and platform logs from the Telemetry API).
func components(buf *exportBuffer, hub *telemetryHub) (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = receiver.MakeFactoryMap(
		otlpreceiver.NewFactory(),
		newTelemetryAPIFactory(hub),
	); err != nil {
		return f, err
	}
	if f.Processors, err = processor.MakeFactoryMap(
		newBufferProcessorFactory(buf),
	); err != nil {
		return f, err
	}
	if f.Exporters, err = exporter.MakeFactoryMap(
		awsxrayexporter.NewFactory(),
		awsemfexporter.NewFactory(),
		prometheusremotewriteexporter.NewFactory(),
		loggingexporter.NewFactory(),
		debugexporter.NewFactory(),
		otlpexporter.NewFactory(),
		otlphttpexporter.NewFactory(),
	); err != nil {
		return f, err
	}
	f.Extensions, err = extension.MakeFactoryMap(
		sigv4authextension.NewFactory(),
	)
	return f, err
}
