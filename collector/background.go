// background.go: the "no freeze" path, where held batches leave in the background, off event/next's path.
package main

import (
	"context"
	"time"
)

// backgroundExport drains the buffer whenever it holds something, with the drain's
// bounded concurrency, for a sandbox that is never frozen: there, data still held
// when the extension asks for the next event is not stranded, so neither the
// invocation's response nor event/next waits for the backend.
type backgroundExport struct {
	buf      *exportBuffer
	ctx      context.Context
	cancel   context.CancelFunc
	stopping chan struct{}
	done     chan struct{}
}

func startBackgroundExport(buf *exportBuffer) *backgroundExport {
	ctx, cancel := context.WithCancel(context.Background())
	bg := &backgroundExport{buf: buf, ctx: ctx, cancel: cancel,
		stopping: make(chan struct{}), done: make(chan struct{})}
	go bg.run(buf.wakeOnHold())
	return bg
}

func (bg *backgroundExport) run(wake <-chan struct{}) {
	defer close(bg.done)
	for {
		bg.drainHeld(wake)
		select {
		case <-wake:
		case <-bg.stopping:
			// What the SDK sent just before SHUTDOWN may have missed the last round.
			bg.drainHeld(wake)
			return
		}
	}
}

func (bg *backgroundExport) drainHeld(wake <-chan struct{}) {
	if bg.buf.held() == 0 || bg.ctx.Err() != nil {
		return
	}
	begin := time.Now()
	sent := bg.buf.drain(bg.ctx, wake)
	logger.Debugf("in the background: sent %d batch(es) in %v", sent, time.Since(begin).Round(time.Millisecond))
	warnDropped(bg.buf)
}

// stop lets the sends under way and the batches still held go out until `until`, then
// cuts what is left short (back to the buffer) and returns.
func (bg *backgroundExport) stop(until time.Time) {
	cut := time.AfterFunc(time.Until(until), bg.cancel)
	defer cut.Stop()
	close(bg.stopping)
	select {
	case <-bg.done:
	case <-time.After(time.Until(until) + 2*cancelGrace):
		// drain returns within cancelGrace of the cut; this only guards against a send
		// that ignores its context.
	}
	bg.cancel()
}
