// lifecycle_faults_test.go: one bad invocation, a refusing backend, a signal or the collector's exit mid-invocation.
package main

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// heldInvocation runs one invocation whose events arrive on time and checks the SDK's
// export was answered at once and delivered by event/next: batches are held again.
func heldInvocation(t *testing.T, lambda *fakeLambda, backend *fakeBackend, buf *exportBuffer, receiver, id string) {
	t.Helper()
	before := backend.received()
	lambda.invoke(id, 10*time.Second)
	lambda.platform(eventStart, id)
	// After a fallback, export stays synchronous until the extension has the INVOKE.
	for end := time.Now().Add(time.Second); !buf.isHolding() && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if took := sdkExport(t, receiver); took > 150*time.Millisecond {
		t.Errorf("%s: the SDK waited %v; want the batch held and an answer at once", id, took)
	}
	lambda.platform(eventRuntimeDone, id)
	if next := lambda.waitNext(5 * time.Second); next.received != before+1 {
		t.Errorf("%s: backend had %d request(s) at event/next; want %d", id, next.received, before+1)
	}
}

// One platform.start later than startWait (a CPU-starved cold start): that invocation
// exports synchronously, the next one holds batches again.
func TestLatePlatformStartFallsBackForThatInvocationOnly(t *testing.T) {
	setVar(t, &startWait, 200*time.Millisecond)
	backend := newFakeBackend(t, 300*time.Millisecond)
	sb := startSandbox(t, backend, "")
	lambda, receiver := sb.lambda, sb.receiver

	lambda.invoke("r1", 10*time.Second)
	time.Sleep(400 * time.Millisecond)
	lambda.platform(eventStart, "r1")
	if took := sdkExport(t, receiver); took < 300*time.Millisecond {
		t.Errorf("r1: answered in %v; after the missed platform.start export is synchronous", took)
	}
	lambda.platform(eventRuntimeDone, "r1")
	lambda.waitNext(5 * time.Second)
	heldInvocation(t, lambda, backend, sb.buf, receiver, "r2")

	sb.shutdown(t)
}

// A first invocation that runs into its deadline less the drain: its runtimeDone comes
// after event/next. The next invocation holds batches again.
func TestLongFirstInvocationFallsBackForThatInvocationOnly(t *testing.T) {
	t.Setenv(drainTimeoutEnv, "600")
	backend := newFakeBackend(t, 0)
	sb := startSandbox(t, backend, "")
	lambda, receiver := sb.lambda, sb.receiver

	lambda.invoke("r1", time.Second)
	lambda.platform(eventStart, "r1")
	lambda.waitNext(5 * time.Second)
	lambda.platform(eventRuntimeDone, "r1")
	backend.setDelay(300 * time.Millisecond)
	heldInvocation(t, lambda, backend, sb.buf, receiver, "r2")

	sb.shutdown(t)
	if strings.Contains(sb.log.String(), "until one arrives") {
		t.Errorf("turned synchronous beyond the one invocation:\n%s", sb.log)
	}
}

// A 503 is retried within the drain, not after the exporter's default 5 s: the batch
// is delivered before event/next, which comes within the drain timeout.
func TestRefusedSendIsRetriedWithinTheDrain(t *testing.T) {
	t.Setenv(drainTimeoutEnv, "1s")
	backend := newFakeBackend(t, 0)
	backend.refuse = 1
	sb := startSandbox(t, backend, "")
	lambda, receiver := sb.lambda, sb.receiver

	if _, _, waited := lambda.invocation(receiver, "r1"); waited > 1100*time.Millisecond {
		t.Errorf("event/next %v after runtimeDone; the drain timeout is 1s", waited)
	}
	if n := backend.answers(); n != 1 {
		t.Errorf("backend accepted %d batch(es) by event/next; want the refused one retried and delivered", n)
	}
	sb.shutdown(t)
}

// SIGTERM while the lifecycle waits for runtimeDone: the wait ends, the held batch is
// sent and the extension exits 0, within shutdownBudget.
func TestSignalDuringAnInvocationShutsDown(t *testing.T) {
	backend := newFakeBackend(t, 0)
	sb := startSandbox(t, backend, "")
	lambda, receiver := sb.lambda, sb.receiver

	lambda.invoke("r1", 10*time.Second)
	lambda.platform(eventStart, "r1")
	sdkExport(t, receiver)
	// runExtension has caught SIGTERM since before Init ended (signal.Notify), so the
	// signal reaches its channel, not the test process's default handler.
	begin := time.Now()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, sb.rc, 3*time.Second); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, sb.log)
	}
	if took := time.Since(begin); took >= shutdownBudget {
		t.Errorf("exit %v after SIGTERM; want within %v", took, shutdownBudget)
	}
	if n := backend.answers(); n != 1 {
		t.Errorf("backend accepted %d batch(es); want the held one sent at the signal", n)
	}
}

// The collector exiting while the lifecycle waits: the extension reports exit/error at
// once instead of after the wait.
func TestCollectorExitDuringAnInvocationIsReported(t *testing.T) {
	captureLog(t)
	setVar(t, &startWait, 5*time.Second)
	lambda := newFakeLambda(t, nil)
	c := &extensionClient{api: strings.TrimPrefix(lambda.srv.URL, "http://"), id: "ext-id"}
	lc := &lifecycle{buf: newExportBuffer(), events: newInvokeEvents(), drainTimeout: time.Second}
	rc := &runningCollector{done: make(chan error, 1)}
	code := make(chan int, 1)
	go func() { code <- eventLoop(c, rc, lc, make(chan os.Signal)) }()

	lambda.invoke("r1", 10*time.Second)
	lambda.waitNext(5 * time.Second) // the call that gets r1; the lifecycle now waits for its events
	time.Sleep(100 * time.Millisecond)
	begin := time.Now()
	rc.done <- errors.New("receiver failed")
	if got := waitExit(t, code, time.Second); got != 1 {
		t.Errorf("exit %d, want 1", got)
	}
	if took := time.Since(begin); took > 500*time.Millisecond {
		t.Errorf("collector's exit seen %v late", took)
	}
	reports := lambda.errorReports()
	if len(reports) != 1 || !strings.Contains(reports[0], "exit/error Extension.CollectorExited") {
		t.Errorf("error reports %q; want one exit/error naming the collector's exit", reports)
	}
}
