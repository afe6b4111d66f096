// units_test.go: the small pure pieces: $VAR rewriting, drain timeout parsing, notice filter, buffer bound.
package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestRewriteString(t *testing.T) {
	for in, want := range map[string]string{
		"$HOST:4318":      "${env:HOST}:4318",
		"a$B_1c-d":        "a${env:B_1c}-d",
		"${HOST}":         "${HOST}",
		"$${HOST} $$HOST": "$${HOST} $$HOST",
		"5$ $1 $-":        "5$ $1 $-",
		"$":               "$",
		"no dollar":       "no dollar",
	} {
		if got := rewriteString(in); got != want {
			t.Errorf("rewriteString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDrainTimeout(t *testing.T) {
	captureLog(t)
	for in, want := range map[string]time.Duration{
		"":      defaultDrainTimeout,
		"1500":  1500 * time.Millisecond,
		"2s":    2 * time.Second,
		"250ms": 250 * time.Millisecond,
		"0":     defaultDrainTimeout,
		"-1s":   defaultDrainTimeout,
		"soon":  defaultDrainTimeout,
	} {
		if got := parseDrainTimeout(in); got != want {
			t.Errorf("parseDrainTimeout(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestNoticeFilterDropsOnlyTheNotices(t *testing.T) {
	core, seen := observer.New(zapcore.InfoLevel)
	log := zap.New(core, quietLogging()).With(zap.String("kind", "exporter"))
	log.Warn("The logging exporter is DEPRECATED and will be REMOVED in v0.111.0.")
	log.Info("The default endpoints for all servers in components have changed to use localhost instead of 0.0.0.0.")
	log.Info("MetricsExporter", zap.Int("metrics", 1))
	if got := seen.All(); len(got) != 1 || got[0].Message != "MetricsExporter" {
		t.Errorf("passed through: %v", got)
	}
}

func TestBufferDropsTheOldestWhenFull(t *testing.T) {
	buf := newExportBuffer()
	buf.setHolding(true)
	var (
		mu   sync.Mutex
		sent []int
	)
	for i := range maxHeld + 3 {
		buf.consume(context.Background(), func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, i)
			return nil
		})
	}
	if got := buf.takeDropped(); got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
	buf.setHolding(false)
	buf.drain(context.Background())
	if len(sent) != maxHeld || buf.held() != 0 {
		t.Errorf("sent %d, left %d", len(sent), buf.held())
	}
	for _, i := range sent {
		if i < 3 {
			t.Errorf("batch %d was kept; the oldest go first", i)
		}
	}
}
