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
	// missedStart, missedDone: an invocation has gone by without its platform.start, or
	// with it but without runtimeDone. While no event of that kind has ever arrived,
	// later invocations export synchronously instead of waiting in vain; the first event
	// that does arrive (a late one included) ends that.
	missedStart, missedDone bool
	saidSync                bool // the line about synchronous export has been logged
	// background is set on the "no freeze" path (the Telemetry API answered
	// Telemetry.NotSupported): batches leave as they come, event/next waits for nothing.
	background *backgroundExport
}

// afterInvoke returns when the extension may ask for the next event: the runtime has
// finished the invocation and what it sent has been delivered, or time is up. Ending
// waits (a signal, the collector's exit) stops the waiting for the runtime at once;
// ending sends cuts the drain short.
func (l *lifecycle) afterInvoke(waits, sends context.Context, ev extensionEvent) {
	if l.background != nil {
		return
	}
	deadline := time.Now().Add(noDeadline)
	if ev.DeadlineMs > 0 {
		deadline = time.UnixMilli(ev.DeadlineMs).Add(-deadlineMargin)
	}
	if l.holds() {
		l.buf.setHolding(true)
		l.waitForRuntime(waits, ev.RequestID, deadline)
	} else {
		l.buf.setHolding(false)
	}
	if l.buf.held() > 0 {
		until := time.Now().Add(l.drainTimeout)
		if deadline.Before(until) {
			until = deadline
		}
		l.drain(sends, until, "after invocation "+ev.RequestID, "they wait for the next invocation or SHUTDOWN")
	}
}

// holds says whether this invocation's batches are held until runtimeDone. Not when
// there is no Telemetry API, nor while it has never delivered what an earlier
// invocation waited for in vain: then each SDK flush waits for the backend instead.
func (l *lifecycle) holds() bool {
	if l.events == nil {
		return false
	}
	stuck := (l.missedStart && !l.events.everStarted()) || (l.missedDone && !l.events.everDone())
	if stuck && !l.saidSync {
		l.saidSync = true
		logger.Warnf("the Telemetry API has not delivered the platform events the lifecycle waits for; " +
			"exporting synchronously until one arrives")
	}
	return !stuck
}

// waitForRuntime waits for the invocation's platform.start, then its runtimeDone. If
// either is late, what the runtime sends from then on goes out at once, so it is
// delivered before the sandbox freezes; the next invocation holds batches again.
func (l *lifecycle) waitForRuntime(ctx context.Context, requestID string, deadline time.Time) {
	startBy := time.Now().Add(startWait)
	if deadline.Before(startBy) {
		startBy = deadline
	}
	if !l.waitEvent(ctx, requestID, startBy, isStarted) {
		l.buf.setHolding(false)
		if ctx.Err() == nil {
			l.missedStart = true
			logger.Warnf("no platform.start for request %s within %v; exporting it synchronously", requestID, startWait)
		}
		return
	}
	// Leave room to drain before the deadline.
	if l.waitEvent(ctx, requestID, deadline.Add(-l.drainTimeout), isDone) {
		return
	}
	l.buf.setHolding(false)
	if ctx.Err() == nil {
		l.missedDone = true
		logger.Warnf("no platform.runtimeDone for request %s before its deadline; exporting the rest of it synchronously",
			requestID)
	}
}

func (l *lifecycle) waitEvent(parent context.Context, requestID string, by time.Time, want func(requestState) bool) bool {
	ctx, cancel := context.WithDeadline(parent, by)
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
		l.drain(context.Background(), until, "at SHUTDOWN", "they are lost")
	}
}

// drain sends held batches until `until`; one line if some are left or were dropped.
func (l *lifecycle) drain(parent context.Context, until time.Time, when, leftFate string) {
	ctx, cancel := context.WithDeadline(parent, until)
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

// warnDropped says, once per drain, how many batches the buffer dropped for room and
// how many sends the deadline cut short.
func warnDropped(buf *exportBuffer) {
	if n := buf.takeDropped(); n > 0 {
		logger.Warnf("dropped the %d oldest unsent batch(es): more than %d were waiting", n, maxHeld)
	}
	if n := buf.takeCut(); n > 0 {
		logger.Warnf("dropped %d batch(es) whose send was cut short by the deadline; not sent again, "+
			"as the backend may have them already", n)
	}
}
