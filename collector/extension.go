// extension.go: runs the collector as a Lambda external extension, from register to SHUTDOWN.
package main

// Extensions API 2020-01-01: register under the executable's file name, subscribe to
// platform events (Telemetry API), start the collector, then loop on event/next. After
// each INVOKE the lifecycle holds event/next until the invocation's data has left (where
// nothing freezes, as under AWS's RIE, it sends in the background instead); SHUTDOWN
// (or SIGTERM/SIGINT) sends what is left, stops the collector and exits 0.

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/otelcol"
)

func runExtension(set otelcol.CollectorSettings, buf *exportBuffer, hub *telemetryHub, src configSource) int {
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		logger.Errorf("AWS_LAMBDA_RUNTIME_API is not set, so this is not a Lambda extension environment; " +
			"outside Lambda run `collector --config FILE` or `collector components`")
		return 2
	}
	es := settingsFromEnv()
	c := &extensionClient{api: api}
	name := filepath.Base(os.Args[0])
	events := []string{"INVOKE", "SHUTDOWN"}
	if es.managedInstances {
		// Lambda Managed Instances refuse INVOKE for extensions and never freeze.
		events = []string{"SHUTDOWN"}
	}
	if err := c.register(context.Background(), name, events); err != nil {
		logger.Errorf("cannot register extension %q: %v", name, err)
		return 1
	}
	logger.Infof("registered as %q; config from %s", name, src)

	// Lambda sends SHUTDOWN, not signals; treat SIGTERM/SIGINT the same way.
	set.DisableGracefulShutdown = true
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	// The collector starts before the subscription: its telemetryapi receivers say
	// which types the one subscription asks for.
	rc, err := startCollector(set)
	if err != nil {
		errType, reason := initFailure(err, src)
		c.fail("init", errType, reason)
		return 1
	}
	lc := &lifecycle{buf: buf, drainTimeout: es.drainTimeout}
	if !es.managedInstances {
		if tl := startTelemetry(c, es, lc, hub); tl != nil {
			defer tl.close()
		}
	}
	return eventLoop(c, rc, lc, sigs)
}

// startTelemetry subscribes to platform events; without them (no listener, refused
// subscription) batches are sent synchronously, as before the Telemetry API existed,
// except where the answer is the emulator's Telemetry.NotSupported: no freeze comes,
// so batches go out in the background.
func startTelemetry(c *extensionClient, es extensionSettings, lc *lifecycle, hub *telemetryHub) *telemetryListener {
	events := newInvokeEvents()
	tl, err := listenTelemetry(es.listenerHost, es.listenerPort, events, hub)
	if err != nil {
		logger.Warnf("cannot listen for Telemetry API events (%v); exporting synchronously", err)
		return nil
	}
	err = c.subscribeTelemetry(context.Background(), tl.uri, hub.types())
	if errors.Is(err, errTelemetryNotSupported) {
		tl.close()
		logger.Infof("the Telemetry API answered %s, as AWS's Runtime Interface Emulator does, whose "+
			"sandbox is never frozen: export path \"no freeze\": event/next right after each INVOKE, "+
			"batches exported in the background, what is left sent at SHUTDOWN", notSupportedType)
		lc.background = startBackgroundExport(lc.buf)
		lc.buf.setHolding(true)
		return nil
	}
	if err != nil {
		tl.close()
		logger.Warnf("Telemetry API subscription refused (%v); exporting synchronously", err)
		return nil
	}
	logger.Debugf("subscribed to Telemetry API types %v at %s", hub.types(), tl.uri)
	lc.events = events
	lc.buf.setHolding(true)
	return tl
}

type nextResult struct {
	ev  extensionEvent
	err error
}

func eventLoop(c *extensionClient, rc *runningCollector, lc *lifecycle, sigs <-chan os.Signal) int {
	for {
		// One event/next at a time: the next call must wait for afterInvoke.
		next := make(chan nextResult, 1)
		go func() {
			ev, err := c.next(context.Background())
			next <- nextResult{ev, err}
		}()
		select {
		case r := <-next:
			switch {
			case r.err != nil:
				shutdown(rc, lc, time.Now().Add(shutdownBudget))
				c.fail("exit", "Extension.NextEvent", r.err)
				return 1
			case r.ev.EventType == "SHUTDOWN":
				logger.Debugf("SHUTDOWN (%s)", r.ev.ShutdownReason)
				return shutdown(rc, lc, shutdownDeadline(r.ev))
			case r.ev.EventType == "INVOKE":
				if code, over := runInvoke(c, rc, lc, sigs, r.ev); over {
					return code
				}
			}
		case s := <-sigs:
			return onSignal(rc, lc, s, time.Now().Add(shutdownBudget))
		case err := <-rc.done:
			return collectorExited(c, err)
		}
	}
}

// runInvoke runs afterInvoke while watching for a signal and for the collector's exit,
// which may come at any time, also while the lifecycle waits for the runtime or drains.
// over: the extension is done, with exit code code.
func runInvoke(c *extensionClient, rc *runningCollector, lc *lifecycle, sigs <-chan os.Signal, ev extensionEvent) (code int, over bool) {
	waits, endWaits := context.WithCancel(context.Background())
	sends, endSends := context.WithCancel(context.Background())
	defer endWaits()
	defer endSends()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		lc.afterInvoke(waits, sends, ev)
	}()
	select {
	case <-finished:
		return 0, false
	case s := <-sigs:
		// Sends under way may go on, within the same bound as the drain at shutdown.
		deadline := time.Now().Add(shutdownBudget)
		endWaits()
		cut := time.AfterFunc(time.Until(deadline.Add(-shutdownReserve)), endSends)
		defer cut.Stop()
		<-finished
		return onSignal(rc, lc, s, deadline), true
	case err := <-rc.done:
		// No pipeline is left to send through.
		endWaits()
		endSends()
		<-finished
		return collectorExited(c, err), true
	}
}

func onSignal(rc *runningCollector, lc *lifecycle, s os.Signal, deadline time.Time) int {
	logger.Infof("signal %v: sending what is left and stopping", s)
	return shutdown(rc, lc, deadline)
}

func collectorExited(c *extensionClient, err error) int {
	if err == nil {
		err = errors.New("collector exited before SHUTDOWN")
	}
	c.fail("exit", "Extension.CollectorExited", err)
	return 1
}

// shutdownDeadline is Lambda's deadline for SHUTDOWN, or shutdownBudget from now.
func shutdownDeadline(ev extensionEvent) time.Time {
	if ev.DeadlineMs > 0 {
		return time.UnixMilli(ev.DeadlineMs)
	}
	return time.Now().Add(shutdownBudget)
}

// shutdown sends what is left and stops the collector, all before deadline.
func shutdown(rc *runningCollector, lc *lifecycle, deadline time.Time) int {
	lc.atShutdown(deadline)
	if err := rc.stop(deadline); err != nil {
		logger.Errorf("collector shutdown: %v", err)
		return 1
	}
	return 0
}
