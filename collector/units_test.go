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
	buf.drain(context.Background(), nil)
	if len(sent) != maxHeld || buf.held() != 0 {
		t.Errorf("sent %d, left %d", len(sent), buf.held())
	}
	for _, i := range sent {
		if i < 3 {
			t.Errorf("batch %d was kept; the oldest go first", i)
		}
	}
}

func TestTelemetryNotSupportedMatchesOnlyTheEmulatorsAnswer(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   bool
	}{
		{202, rieNotSupported, true},
		{202, `{"errorType":"Telemetry.NotSupported"}`, true},
		{200, rieNotSupported, false},
		{400, rieNotSupported, false},
		{500, rieNotSupported, false},
		{202, ``, false},
		{202, `{}`, false},
		{202, `{"errorType":"Logs.NotSupported"}`, false},
		{202, `{"errorType":"telemetry.notsupported"}`, false},
		{202, `Telemetry.NotSupported`, false},
		{202, `{"errorMessage":"Telemetry.NotSupported"}`, false},
	} {
		if got := telemetryNotSupported(c.status, []byte(c.body)); got != c.want {
			t.Errorf("telemetryNotSupported(%d, %q) = %v, want %v", c.status, c.body, got, c.want)
		}
	}
}

// In the background a batch held while slow sends are under way starts at once, and no
// more than drainWorkers sends run side by side.
func TestBackgroundDrainStartsNewBatchesAtOnceWithinTheBound(t *testing.T) {
	buf := newExportBuffer()
	buf.setHolding(true)
	wake := buf.wakeOnHold()
	release := make(chan struct{})
	var (
		mu            sync.Mutex
		running, most int
		started       = make(chan int, 16)
	)
	batch := func(i int) send {
		return func(ctx context.Context) error {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			started <- i
			if i == 0 || i >= 2 {
				<-release
			}
			mu.Lock()
			running--
			mu.Unlock()
			return nil
		}
	}
	buf.consume(context.Background(), batch(0))
	done := make(chan int)
	go func() { done <- buf.drain(context.Background(), wake) }()
	if i := <-started; i != 0 {
		t.Fatalf("batch %d started first", i)
	}
	buf.consume(context.Background(), batch(1))
	select {
	case i := <-started:
		if i != 1 {
			t.Fatalf("batch %d started, want 1", i)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a batch held during a slow send waited for it")
	}
	for i := 2; i < 8; i++ {
		buf.consume(context.Background(), batch(i))
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	if sent := <-done; sent != 8 {
		t.Errorf("sent %d, want 8", sent)
	}
	if most > drainWorkers {
		t.Errorf("%d sends ran side by side; the bound is %d", most, drainWorkers)
	}
	if most < drainWorkers {
		t.Errorf("at most %d sends ran side by side with 7 waiting; want %d", most, drainWorkers)
	}
}
