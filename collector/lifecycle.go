// lifecycle.go: what the extension does between an INVOKE and its next event/next call, and at SHUTDOWN.
package main

import (
	"context"
	"time"
)

var (
	// startWait bounds the wait for an invocation's platform.start. Lambda delivers
	// platform events in batches every 25 ms (the subscription's buffering), so a
	// second without one means this Telemetry API delivers nothing (an emulator that
	// accepts the subscription and never sends an event); then export turns synchronous.
	startWait = time.Second
	// deadlineMargin keeps event/next ahead of the invocation's deadline: Lambda times
	// out an invocation whose extensions have not asked for the next event by then.
	deadlineMargin = 100 * time.Millisecond
	// shutdownReserve is kept from Lambda's SHUTDOWN deadline (2 s) to shut the
	// collector down and exit after the last drain.
	shutdownReserve = 250 * time.Millisecond
	// shutdownBudget stands in for Lambda's deadline when SHUTDOWN carries none (signals).
	shutdownBudget = 2 * time.Second
	// noDeadline stands in for an INVOKE without deadlineMs: Lambda's longest timeout.
	noDeadline = 15 * time.Minute
)

type lifecycle struct {
	buf          *exportBuffer
	events       *invokeEvents // nil when there is no Telemetry API: batches go out synchronously
	drainTimeout time.Duration
	syncForGood  bool // the Telemetry API proved unusable: synchronous export until the end
	// background is set on the "no freeze" path (the Telemetry API answered
	// Telemetry.NotSupported): batches leave as they come, event/next waits for nothing.
	background *backgroundExport
}

// afterInvoke returns when the extension may ask for the next event: the runtime has
// finished the invocation and what it sent has been delivered, or time is up.
func (l *lifecycle) afterInvoke(ev extensionEvent) {
	if l.background != nil {
		return
	}
	deadline := time.Now().Add(noDeadline)
	if ev.DeadlineMs > 0 {
		deadline = time.UnixMilli(ev.DeadlineMs).Add(-deadlineMargin)
	}
	if l.events != nil && !l.syncForGood {
		l.buf.setHolding(true)
		l.waitForRuntime(ev.RequestID, deadline)
	}
	if l.buf.held() > 0 {
		until := time.Now().Add(l.drainTimeout)
		if deadline.Before(until) {
			until = deadline
		}
		l.drain(until, "after invocation "+ev.RequestID, "they wait for the next invocation or SHUTDOWN")
	}
}

// waitForRuntime waits for the invocation's platform.start, then its runtimeDone.
func (l *lifecycle) waitForRuntime(requestID string, deadline time.Time) {
	startBy := time.Now().Add(startWait)
	if deadline.Before(startBy) {
		startBy = deadline
	}
	if !l.waitEvent(requestID, startBy, isStarted) {
		l.buf.setHolding(false)
		l.syncForGood = true
		logger.Warnf("the Telemetry API accepted the subscription but sent no platform.start for request %s within %v; "+
			"exporting synchronously from now on", requestID, startWait)
		return
	}
	// Leave room to drain before the deadline.
	if l.waitEvent(requestID, deadline.Add(-l.drainTimeout), isDone) {
		return
	}
	// The runtime may still be running: what it sends from now on goes out at once,
	// so it is delivered before the sandbox freezes.
	l.buf.setHolding(false)
	if !l.events.everDone() {
		l.syncForGood = true
		logger.Warnf("the Telemetry API sent platform.start but no platform.runtimeDone for request %s before its deadline; "+
			"exporting synchronously from now on", requestID)
	}
}

func (l *lifecycle) waitEvent(requestID string, by time.Time, want func(requestState) bool) bool {
	ctx, cancel := context.WithDeadline(context.Background(), by)
	defer cancel()
	return l.events.wait(ctx, requestID, want)
}

// atShutdown sends everything left, leaving time before deadline to stop the collector.
func (l *lifecycle) atShutdown(deadline time.Time) {
	until := deadline.Add(-shutdownReserve)
	l.buf.setHolding(false)
	if l.background != nil {
		// Its sends under way finish rather than start over in the drain below.
		l.background.stop(until)
	}
	if l.buf.held() > 0 {
		l.drain(until, "at SHUTDOWN", "they are lost")
	}
}

// drain sends held batches until `until`; one line if some are left or were dropped.
func (l *lifecycle) drain(until time.Time, when, leftFate string) {
	ctx, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	begin := time.Now()
	sent := l.buf.drain(ctx, nil)
	logger.Debugf("%s: sent %d batch(es) in %v", when, sent, time.Since(begin).Round(time.Millisecond))
	warnDropped(l.buf)
	if left := l.buf.held(); left > 0 {
		logger.Warnf("%s: %d batch(es) not sent within %v; %s", when, left,
			until.Sub(begin).Round(time.Millisecond), leftFate)
	}
}

// warnDropped says, once per drain, how many batches the buffer dropped for room.
func warnDropped(buf *exportBuffer) {
	if n := buf.takeDropped(); n > 0 {
		logger.Warnf("dropped the %d oldest unsent batch(es): more than %d were waiting", n, maxHeld)
	}
}
