// telemetryapi.go: the telemetryapi receiver, fed by the extension's one Telemetry API subscription.
package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
)

// telemetryAPIType is the receiver's name in configs, as upstream's opentelemetry-lambda.
var telemetryAPIType = component.MustNewType("telemetryapi")

// The Telemetry API's stream types (subscription "types").
const (
	streamPlatform  = "platform"
	streamFunction  = "function"
	streamExtension = "extension"
)

// telemetryAPIConfig: which streams become log records. The default leaves out
// "extension": its lines include the collector's own, and a failed export of them would
// log a line that is exported in turn.
type telemetryAPIConfig struct {
	Types []string `mapstructure:"types"`
}

func (c *telemetryAPIConfig) Validate() error {
	for _, t := range c.Types {
		if t != streamPlatform && t != streamFunction && t != streamExtension {
			return fmt.Errorf("unknown type %q in types: use %q, %q or %q", t, streamPlatform, streamFunction, streamExtension)
		}
	}
	return nil
}

// telemetryHub joins the Telemetry API listener and the telemetryapi receivers: Lambda
// takes one subscription per extension, so the lifecycle's subscription asks for every
// type a receiver wants, and the listener hands each batch here.
type telemetryHub struct {
	mu        sync.Mutex
	receivers []*telemetryAPIReceiver
	requestID string // the invocation under way, from its platform.start
}

func newTelemetryHub() *telemetryHub { return &telemetryHub{} }

// types is the union of what the started receivers want, and "platform", which the
// lifecycle needs.
func (h *telemetryHub) types() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []string{streamPlatform}
	for _, r := range h.receivers {
		for _, t := range r.types {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	slices.Sort(out)
	return out
}

// deliver turns one POSTed batch into log records for every receiver. It returns once
// each receiver's pipeline has taken them: while batches are held that is at once, so
// the logs of an invocation are held before its runtimeDone, later in the same stream,
// is noted.
func (h *telemetryHub) deliver(ctx context.Context, batch []telemetryEvent) {
	h.mu.Lock()
	receivers := slices.Clone(h.receivers)
	records := make([]telemetryRecord, 0, len(batch))
	for _, e := range batch {
		rec := parseTelemetryEvent(e, h.requestID)
		if e.Type == eventStart && rec.requestID != "" {
			h.requestID = rec.requestID
		}
		records = append(records, rec)
	}
	h.mu.Unlock()
	for _, r := range receivers {
		r.consume(ctx, records)
	}
}

func (h *telemetryHub) add(r *telemetryAPIReceiver) {
	h.mu.Lock()
	h.receivers = append(h.receivers, r)
	h.mu.Unlock()
}

func (h *telemetryHub) remove(r *telemetryAPIReceiver) {
	h.mu.Lock()
	h.receivers = slices.DeleteFunc(h.receivers, func(x *telemetryAPIReceiver) bool { return x == r })
	h.mu.Unlock()
}

type telemetryAPIReceiver struct {
	hub   *telemetryHub
	types []string
	next  consumer.Logs
	set   receiver.Settings
}

func (r *telemetryAPIReceiver) Start(context.Context, component.Host) error {
	r.hub.add(r)
	return nil
}

func (r *telemetryAPIReceiver) Shutdown(context.Context) error {
	r.hub.remove(r)
	return nil
}

// wants says whether an event of this Telemetry API type belongs to the receiver's streams.
func (r *telemetryAPIReceiver) wants(eventType string) bool {
	stream, _, _ := strings.Cut(eventType, ".")
	return slices.Contains(r.types, stream)
}

func (r *telemetryAPIReceiver) consume(ctx context.Context, records []telemetryRecord) {
	var mine []telemetryRecord
	for _, rec := range records {
		if r.wants(rec.eventType) {
			mine = append(mine, rec)
		}
	}
	if len(mine) == 0 {
		return
	}
	if err := r.next.ConsumeLogs(ctx, logsFromRecords(mine)); err != nil {
		// Not through the extension's logger: that line would come back as a record.
		r.set.Logger.Debug("telemetryapi: the logs pipeline refused a batch: " + err.Error())
	}
}

// newTelemetryAPIFactory makes the factory; every instance is fed by hub.
func newTelemetryAPIFactory(hub *telemetryHub) receiver.Factory {
	return receiver.NewFactory(
		telemetryAPIType,
		func() component.Config {
			return &telemetryAPIConfig{Types: []string{streamPlatform, streamFunction}}
		},
		receiver.WithLogs(func(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
			return &telemetryAPIReceiver{hub: hub, types: cfg.(*telemetryAPIConfig).Types, next: next, set: set}, nil
		}, component.StabilityLevelAlpha),
	)
}
