// events.go: which platform events the Telemetry API has delivered, per request id.
package main

import (
	"context"
	"sync"
)

// Platform event types (Telemetry API schema 2022-12-13) the lifecycle waits for.
const (
	eventStart       = "platform.start"
	eventRuntimeDone = "platform.runtimeDone"
	eventReport      = "platform.report"
)

// keepRequests bounds the ids remembered: events may arrive before or long after the
// INVOKE they belong to, and ids the lifecycle never asks about must not pile up.
const keepRequests = 64

type requestState struct {
	started bool
	// done: the runtime has finished the invocation (runtimeDone, or report, which
	// Lambda only emits later still).
	done bool
}

type invokeEvents struct {
	mu       sync.Mutex
	byID     map[string]*requestState
	order    []string
	changed  chan struct{} // closed and replaced whenever an event arrives
	anyStart bool          // an invocation's event of any of the three has ever arrived
	anyDone  bool          // a runtimeDone or report has ever arrived
}

func newInvokeEvents() *invokeEvents {
	return &invokeEvents{byID: map[string]*requestState{}, changed: make(chan struct{})}
}

// note records one event; types other than the three above are ignored.
func (e *invokeEvents) note(eventType, requestID string) {
	if requestID == "" || (eventType != eventStart && eventType != eventRuntimeDone && eventType != eventReport) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.byID[requestID]
	if st == nil {
		st = &requestState{}
		e.byID[requestID] = st
		e.order = append(e.order, requestID)
		if len(e.order) > keepRequests {
			delete(e.byID, e.order[0])
			e.order = e.order[1:]
		}
	}
	st.started = true
	e.anyStart = true
	if eventType != eventStart {
		st.done = true
		e.anyDone = true
	}
	close(e.changed)
	e.changed = make(chan struct{})
}

// wait blocks until want holds for requestID or ctx ends; it reports whether it holds.
func (e *invokeEvents) wait(ctx context.Context, requestID string, want func(requestState) bool) bool {
	for {
		e.mu.Lock()
		st := e.byID[requestID]
		ok := st != nil && want(*st)
		changed := e.changed
		e.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// everStarted reports whether this sandbox has ever seen an invocation's event.
func (e *invokeEvents) everStarted() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.anyStart
}

// everDone reports whether this sandbox has ever seen the runtime finish an invocation.
func (e *invokeEvents) everDone() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.anyDone
}

func isStarted(s requestState) bool { return s.started }
func isDone(s requestState) bool    { return s.done }
