// processor.go: the lambdabuffer processor, which hands every batch to the shared exportBuffer.
package main

import (
	"context"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
)

// bufferProcessorType is the processor's name in configs; the config converter puts it
// last in every pipeline, so users never write it themselves.
var bufferProcessorType = component.MustNewType("lambdabuffer")

type bufferProcessorConfig struct{}

// bufferProcessor forwards to next through buf: at once, or when the lifecycle drains.
type bufferProcessor struct {
	buf *exportBuffer
}

func (bufferProcessor) Start(context.Context, component.Host) error { return nil }
func (bufferProcessor) Shutdown(context.Context) error              { return nil }

// Capabilities: a held batch is only read later, never changed.
func (bufferProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// detach keeps the caller's client info (auth, metadata) but not its deadline or
// cancellation: a held batch is sent after the receiver has answered. Sent at once,
// sendCtx is the caller's own context.
func detach(sendCtx, from context.Context) context.Context {
	return client.NewContext(sendCtx, client.FromContext(from))
}

type tracesProcessor struct {
	bufferProcessor
	next consumer.Traces
}

func (p tracesProcessor) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return p.buf.consume(ctx, func(sendCtx context.Context) error {
		return p.next.ConsumeTraces(detach(sendCtx, ctx), td)
	})
}

type metricsProcessor struct {
	bufferProcessor
	next consumer.Metrics
}

func (p metricsProcessor) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	return p.buf.consume(ctx, func(sendCtx context.Context) error {
		return p.next.ConsumeMetrics(detach(sendCtx, ctx), md)
	})
}

type logsProcessor struct {
	bufferProcessor
	next consumer.Logs
}

func (p logsProcessor) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	return p.buf.consume(ctx, func(sendCtx context.Context) error {
		return p.next.ConsumeLogs(detach(sendCtx, ctx), ld)
	})
}

// newBufferProcessorFactory makes the factory; every pipeline's instance shares buf.
func newBufferProcessorFactory(buf *exportBuffer) processor.Factory {
	base := bufferProcessor{buf: buf}
	return processor.NewFactory(
		bufferProcessorType,
		func() component.Config { return &bufferProcessorConfig{} },
		processor.WithTraces(func(_ context.Context, _ processor.Settings, _ component.Config, next consumer.Traces) (processor.Traces, error) {
			return tracesProcessor{base, next}, nil
		}, component.StabilityLevelStable),
		processor.WithMetrics(func(_ context.Context, _ processor.Settings, _ component.Config, next consumer.Metrics) (processor.Metrics, error) {
			return metricsProcessor{base, next}, nil
		}, component.StabilityLevelStable),
		processor.WithLogs(func(_ context.Context, _ processor.Settings, _ component.Config, next consumer.Logs) (processor.Logs, error) {
			return logsProcessor{base, next}, nil
		}, component.StabilityLevelStable),
	)
}
