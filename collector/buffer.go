// buffer.go: holds what the SDK sent until the lifecycle drains it to the exporters.
package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// send delivers one held batch to the rest of its pipeline (the exporters).
type send func(context.Context) error

// drainWorkers is how many held batches are sent at once: a traces, a metrics and a
// logs batch of one invocation go out side by side instead of one after another.
const drainWorkers = 4

// maxHeld bounds memory when the backend stays unreachable: one batch is one SDK export
// (up to 512 spans by default), so 256 is far more than one invocation makes. Past it,
// the oldest batch is dropped.
const maxHeld = 256

// cancelGrace is how long a drain waits, after its deadline, for sends it cancelled.
const cancelGrace = 50 * time.Millisecond

// exportBuffer is shared by every pipeline's lambdabuffer processor. While holding, it
// answers the receiver at once and keeps the batch; otherwise it sends synchronously.
type exportBuffer struct {
	mu      sync.Mutex
	holding bool
	queue   []send
	dropped int
	cut     int           // sends the drain's deadline cut short, dropped rather than sent again
	wake    chan struct{} // nil unless exported in the background: signalled per held batch
}

func newExportBuffer() *exportBuffer { return &exportBuffer{} }

// consume is called by the processors for every batch the receivers accept.
func (b *exportBuffer) consume(ctx context.Context, s send) error {
	b.mu.Lock()
	if !b.holding {
		b.mu.Unlock()
		return s(ctx)
	}
	if len(b.queue) >= maxHeld {
		b.queue = b.queue[1:]
		b.dropped++
	}
	b.queue = append(b.queue, s)
	if b.wake != nil {
		select {
		case b.wake <- struct{}{}:
		default: // a signal is already pending: the drainer will see this batch too
		}
	}
	b.mu.Unlock()
	return nil
}

// wakeOnHold returns a channel signalled whenever a batch is held, for a drainer that
// runs in the background.
func (b *exportBuffer) wakeOnHold() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wake == nil {
		b.wake = make(chan struct{}, 1)
	}
	return b.wake
}

// setHolding switches between holding batches (true) and sending them synchronously.
// Batches already held stay until the next drain.
func (b *exportBuffer) setHolding(on bool) {
	b.mu.Lock()
	b.holding = on
	b.mu.Unlock()
}

func (b *exportBuffer) isHolding() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.holding
}

// held is the number of batches waiting.
func (b *exportBuffer) held() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// takeDropped returns how many batches were dropped for room since the last call.
func (b *exportBuffer) takeDropped() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.dropped
	b.dropped = 0
	return n
}

func (b *exportBuffer) pop() (send, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		return nil, false
	}
	s := b.queue[0]
	b.queue = b.queue[1:]
	return s, true
}

// takeCut returns how many sends were cut short since the last call.
func (b *exportBuffer) takeCut() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.cut
	b.cut = 0
	return n
}

func (b *exportBuffer) countCut() {
	b.mu.Lock()
	b.cut++
	b.mu.Unlock()
}

// drain sends held batches, oldest first, drainWorkers at a time, until none is left
// or ctx ends. A send cut short by ctx is dropped and counted, never sent again: the
// backend may have the batch already and only its answer be late. A send that fails
// on its own is dropped too (the exporter has logged why). A signal on more (nil: none) starts
// batches held since without waiting for the sends under way. It returns the number of
// batches delivered.
func (b *exportBuffer) drain(ctx context.Context, more <-chan struct{}) int {
	var (
		wg        sync.WaitGroup
		delivered atomic.Int64
		running   int
	)
	// One token per finished send; never more than drainWorkers are pending.
	finished := make(chan struct{}, drainWorkers)
	for ctx.Err() == nil {
		if running == drainWorkers {
			select {
			case <-finished:
				running--
			case <-ctx.Done():
			}
			continue
		}
		s, ok := b.pop()
		if !ok {
			if running == 0 {
				break
			}
			// Sends still running may hand batches back, and the SDK may add some.
			select {
			case <-finished:
				running--
			case <-more:
			case <-ctx.Done():
			}
			continue
		}
		running++
		// The WaitGroup is only waited on once the loop is over: Add never races a Wait.
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s(ctx)
			switch {
			case err == nil:
				delivered.Add(1)
			case ctx.Err() != nil:
				b.countCut()
			}
			finished <- struct{}{}
		}()
	}
	// Sends honour ctx; give the ones it cut short a moment to be counted.
	waitFor(ctx, &wg, cancelGrace)
	return int(delivered.Load())
}

// waitFor waits for wg until ctx ends, then at most grace longer; true if wg finished.
func waitFor(ctx context.Context, wg *sync.WaitGroup, grace time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
	}
	select {
	case <-done:
		return true
	case <-time.After(grace):
		return false
	}
}
