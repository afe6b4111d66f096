// lifecycle_test.go: the extension against a fake Lambda: drain before event/next, fallbacks, bounds, SHUTDOWN.
package main

import (
	"fmt"
	stdlib "log"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func startExtension(t testing.TB) <-chan int {
	t.Helper()
	rc, _ := startExtensionBuffer(t)
	return rc
}

// startExtensionBuffer also returns the buffer, for tests that look at whether it holds.
func startExtensionBuffer(t testing.TB) (<-chan int, *exportBuffer) {
	t.Helper()
	buf, hub := newExportBuffer(), newTelemetryHub()
	src := configSourceFromEnv()
	rc := make(chan int, 1)
	go func() { rc <- runExtension(collectorSettings(buf, hub, src), buf, hub, src) }()
	return rc, buf
}

// sandbox is the extension started against a fake Lambda and a backend, past Init.
type sandbox struct {
	log      *syncBuffer
	backend  *fakeBackend
	lambda   *fakeLambda
	receiver string // the collector's OTLP/HTTP receiver
	rc       <-chan int
	buf      *exportBuffer
}

// startSandbox starts the extension exporting to endpoint ("": the backend) and waits
// for the end of Init. Set the environment and the backend's answers before.
func startSandbox(t testing.TB, backend *fakeBackend, endpoint string) *sandbox {
	t.Helper()
	sb := &sandbox{log: captureLog(t), backend: backend, lambda: newFakeLambda(t, backend), receiver: freePort(t)}
	if endpoint == "" {
		endpoint = backend.srv.URL
	}
	writeConfig(t, sb.receiver, endpoint)
	sb.rc, sb.buf = startExtensionBuffer(t)
	sb.lambda.waitNext(10 * time.Second)
	return sb
}

// shutdown sends SHUTDOWN and wants exit 0.
func (sb *sandbox) shutdown(t testing.TB) {
	t.Helper()
	sb.lambda.shutdown(2 * time.Second)
	if code := waitExit(t, sb.rc, 3*time.Second); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, sb.log)
	}
}

func waitExit(t testing.TB, rc <-chan int, within time.Duration) int {
	t.Helper()
	select {
	case code := <-rc:
		return code
	case <-time.After(within):
		t.Fatalf("extension still running %v later", within)
		return -1
	}
}

// A backend 300 ms away: the SDK's export is answered at once, and the span reaches the
// backend after runtimeDone and before the extension asks for the next event. Five warm
// invocations; the figures are logged (go test -v).
func TestDrainAfterRuntimeDoneBeforeNext(t *testing.T) {
	log := captureLog(t)
	// net/http writes its complaints (otelhttp v0.54's "superfluous WriteHeader", once per
	// OTLP/HTTP request) through the standard logger.
	stdlog := &syncBuffer{}
	stdlib.SetOutput(stdlog)
	t.Cleanup(func() { stdlib.SetOutput(os.Stderr) })
	backend := newFakeBackend(t, 300*time.Millisecond)
	lambda := newFakeLambda(t, backend)
	receiver := freePort(t)
	writeConfig(t, receiver, backend.srv.URL)
	rc := startExtension(t)
	lambda.waitNext(10 * time.Second) // end of Init

	var answers, gaps []time.Duration
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("r%d", i)
		lambda.invoke(id, 10*time.Second)
		lambda.platform(eventStart, id)
		took := sdkExport(t, receiver)
		answers = append(answers, took)
		if took > 150*time.Millisecond {
			t.Errorf("%s: the SDK waited %v for the collector; want an answer at once", id, took)
		}
		time.Sleep(20 * time.Millisecond)
		if n := backend.received(); n != i-1 {
			t.Errorf("%s: backend got %d request(s) before runtimeDone; want the batch held", id, n)
		}
		done := time.Now()
		lambda.platform(eventRuntimeDone, id)
		next := lambda.waitNext(5 * time.Second)
		gaps = append(gaps, next.at.Sub(done))
		if next.received != i {
			t.Errorf("%s: backend had %d request(s) when event/next was called; want %d", id, next.received, i)
		}
		if gap := next.at.Sub(done); gap < 300*time.Millisecond {
			t.Errorf("%s: event/next came %v after runtimeDone, before the backend could answer", id, gap)
		}
	}
	t.Logf("backend 300ms late: SDK export answered in %v; runtimeDone to event/next %v", answers, gaps)

	lambda.shutdown(2 * time.Second)
	if code := waitExit(t, rc, 3*time.Second); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, log)
	}
	if strings.Contains(log.String(), "WARN") {
		t.Errorf("warnings in a healthy run:\n%s", log)
	}
	if stdlog.String() != "" {
		t.Errorf("net/http logged:\n%s", stdlog)
	}
}

// An emulator that answers the subscription with 200 {} and never sends an event: after
// startWait without platform.start, export turns synchronous, said once.
func TestNoPlatformStartFallsBackToSynchronousExport(t *testing.T) {
	log := captureLog(t)
	setVar(t, &startWait, 200*time.Millisecond)
	backend := newFakeBackend(t, 300*time.Millisecond)
	lambda := newFakeLambda(t, backend)
	receiver := freePort(t)
	writeConfig(t, receiver, backend.srv.URL)
	rc := startExtension(t)
	lambda.waitNext(10 * time.Second)

	lambda.invoke("r1", 10*time.Second)
	sdkExport(t, receiver)
	if next := lambda.waitNext(5 * time.Second); next.received != 1 {
		t.Errorf("first invocation: backend had %d request(s) at event/next; want 1", next.received)
	}
	// Synchronous: the SDK's export returns once the backend has the span, so the
	// runtime cannot ask for the next event (and let the sandbox freeze) before that.
	lambda.invoke("r2", 10*time.Second)
	if took := sdkExport(t, receiver); took < 300*time.Millisecond {
		t.Errorf("second invocation: answered in %v; synchronous export waits for the backend", took)
	}
	if n := backend.received(); n != 2 {
		t.Errorf("second invocation: backend had %d request(s) when the SDK's export returned; want 2", n)
	}
	lambda.waitNext(5 * time.Second)
	lambda.shutdown(2 * time.Second)
	if code := waitExit(t, rc, 3*time.Second); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, log)
	}
	if n := strings.Count(log.String(), "no platform.start"); n != 1 {
		t.Errorf("%d fallback lines, want 1:\n%s", n, log)
	}
}

// RIE's managed-instances mode relays platform.start but never runtimeDone: the wait is
// bounded by the invocation's deadline, then the batch is sent and export turns synchronous.
func TestNoRuntimeDoneWaitIsBoundedThenSynchronous(t *testing.T) {
	log := captureLog(t)
	t.Setenv(drainTimeoutEnv, "300")
	backend := newFakeBackend(t, 0)
	lambda := newFakeLambda(t, backend)
	receiver := freePort(t)
	writeConfig(t, receiver, backend.srv.URL)
	rc := startExtension(t)
	lambda.waitNext(10 * time.Second)

	invoked := time.Now()
	lambda.invoke("r1", 1500*time.Millisecond)
	lambda.platform(eventStart, "r1")
	sdkExport(t, receiver)
	next := lambda.waitNext(5 * time.Second)
	if next.received != 1 {
		t.Errorf("backend had %d request(s) at event/next; want 1", next.received)
	}
	if took := next.at.Sub(invoked); took > 1500*time.Millisecond {
		t.Errorf("event/next %v after INVOKE, past the invocation's deadline", took)
	}
	backend.setDelay(300 * time.Millisecond)
	lambda.invoke("r2", 10*time.Second)
	lambda.platform(eventStart, "r2")
	if took := sdkExport(t, receiver); took < 300*time.Millisecond {
		t.Errorf("second invocation answered in %v; want synchronous export", took)
	}
	lambda.shutdown(2 * time.Second)
	if code := waitExit(t, rc, 3*time.Second); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, log)
	}
	if n := strings.Count(log.String(), "no platform.runtimeDone"); n != 1 {
		t.Errorf("%d fallback lines, want 1:\n%s", n, log)
	}
}

// A backend slower than the drain timeout: event/next is not held past the bound, and
// the send the deadline cut short is dropped, said once, and never sent again: the
// backend has the batch already, only its answer is late.
func TestSendCutAtTheDrainDeadlineIsNotSentAgain(t *testing.T) {
	log := captureLog(t)
	t.Setenv(drainTimeoutEnv, "300ms")
	backend := newFakeBackend(t, 3*time.Second)
	lambda := newFakeLambda(t, backend)
	receiver := freePort(t)
	writeConfig(t, receiver, backend.srv.URL)
	rc := startExtension(t)
	lambda.waitNext(10 * time.Second)

	if _, _, waited := lambda.invocation(receiver, "r1"); waited > 600*time.Millisecond {
		t.Errorf("event/next %v after runtimeDone; the drain timeout is 300ms", waited)
	}
	if n := strings.Count(log.String(), "dropped 1 batch(es) whose send was cut short"); n != 1 {
		t.Errorf("%d lines about the cut send, want 1:\n%s", n, log)
	}

	backend.setDelay(0)
	lambda.shutdown(2 * time.Second)
	if code := waitExit(t, rc, 3*time.Second); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, log)
	}
	if n := backend.received(); n != 1 {
		t.Errorf("backend saw %d request(s); want the one cut short, not sent again", n)
	}
}

// With a backend that never answers in time, SHUTDOWN still ends well within 2 s.
func TestShutdownEndsWithinTwoSeconds(t *testing.T) {
	log := captureLog(t)
	t.Setenv(drainTimeoutEnv, "100ms")
	backend := newFakeBackend(t, 10*time.Second)
	lambda := newFakeLambda(t, backend)
	receiver := freePort(t)
	writeConfig(t, receiver, backend.srv.URL)
	rc := startExtension(t)
	lambda.waitNext(10 * time.Second)

	lambda.invoke("r1", 10*time.Second)
	lambda.platform(eventStart, "r1")
	sdkExport(t, receiver)
	lambda.platform(eventRuntimeDone, "r1")
	lambda.waitNext(5 * time.Second)
	// Held after event/next (a thread of the function's own): left for SHUTDOWN.
	sdkExport(t, receiver)

	begin := time.Now()
	lambda.shutdown(2 * time.Second)
	code := waitExit(t, rc, 3*time.Second)
	if took := time.Since(begin); took >= 2*time.Second {
		t.Errorf("SHUTDOWN took %v; Lambda allows 2s", took)
	}
	if code != 0 {
		t.Errorf("exit %d; log:\n%s", code, log)
	}
	if n := strings.Count(log.String(), "dropped 1 batch(es) whose send was cut short"); n != 2 {
		t.Errorf("%d lines about a cut send, want 2 (after the invocation, at SHUTDOWN):\n%s", n, log)
	}
	if n := backend.received(); n != 2 {
		t.Errorf("backend saw %d request(s); want 2, each batch once", n)
	}
}

// rieNotSupported is, byte for byte, what AWS's RIE answers PUT /2022-07-01/telemetry
// with in its default mode (its Telemetry API stub), with status 202.
const rieNotSupported = `{"errorMessage":"Telemetry API is not supported","errorType":"Telemetry.NotSupported"}` + "\n"

// Every refusal but the emulator's Telemetry.NotSupported means synchronous export from
// the start, as before: nothing says the sandbox will not be frozen.
func TestRefusedSubscriptionExportsSynchronously(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
	}{
		{"202 without a body", 202, ""},
		{"202 with another error type", 202, `{"errorMessage":"Logs API is not supported","errorType":"Logs.NotSupported"}`},
		{"400 Telemetry.NotSupported", 400, rieNotSupported},
		{"400 validation error", 400, `{"errorType":"ValidationError","errorMessage":"URI port is not provided"}`},
		{"500", 500, `{"errorType":"ServiceError"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := captureLog(t)
			backend := newFakeBackend(t, 200*time.Millisecond)
			lambda := newFakeLambda(t, backend)
			lambda.subscribe, lambda.subBody = c.status, c.body
			receiver := freePort(t)
			writeConfig(t, receiver, backend.srv.URL)
			rc := startExtension(t)
			lambda.waitNext(10 * time.Second)

			lambda.invoke("r1", 10*time.Second)
			if took := sdkExport(t, receiver); took < 200*time.Millisecond {
				t.Errorf("answered in %v; want synchronous export", took)
			}
			if n := backend.answers(); n != 1 {
				t.Errorf("backend had answered %d request(s) when the SDK's export returned; want 1", n)
			}
			lambda.waitNext(5 * time.Second)
			lambda.shutdown(2 * time.Second)
			if code := waitExit(t, rc, 3*time.Second); code != 0 {
				t.Fatalf("exit %d; log:\n%s", code, log)
			}
			if n := strings.Count(log.String(), "subscription refused"); n != 1 {
				t.Errorf("%d lines about the refused subscription, want 1:\n%s", n, log)
			}
			if strings.Contains(log.String(), "no freeze") {
				t.Errorf("took the no-freeze path on an ordinary refusal:\n%s", log)
			}
		})
	}
}

// The emulator's 202 Telemetry.NotSupported: its sandbox never freezes, so event/next
// comes at once after each INVOKE, the SDK's export is answered at once, batches reach
// a backend 1 s away in the background, and SHUTDOWN still delivers everything.
func TestTelemetryNotSupportedExportsInTheBackground(t *testing.T) {
	log := captureLog(t)
	const delay = time.Second
	backend := newFakeBackend(t, delay)
	lambda := newFakeLambda(t, backend)
	lambda.subscribe, lambda.subBody = 202, rieNotSupported
	receiver := freePort(t)
	writeConfig(t, receiver, backend.srv.URL)
	rc := startExtension(t)
	lambda.waitNext(10 * time.Second)

	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("r%d", i)
		invoked := time.Now()
		lambda.invoke(id, 10*time.Second)
		// As under the emulator, the extension's event/next and the runtime's work run
		// side by side; the emulator answers the invoke once both are done.
		if took := sdkExport(t, receiver); took > delay/2 {
			t.Errorf("%s: the SDK waited %v for the collector; want an answer at once", id, took)
		}
		next := lambda.waitNext(5 * time.Second)
		if waited := next.at.Sub(invoked); waited > delay/2 {
			t.Errorf("%s: event/next %v after INVOKE; want it at once", id, waited)
		}
		if n := backend.answers(); n >= i {
			t.Errorf("%s: backend had answered %d request(s) by event/next; want the export still under way", id, n)
		}
		if i == 1 && !backend.waitReceived(1, 3*time.Second) {
			t.Fatalf("%s: no export reached the backend without a further event; log:\n%s", id, log)
		}
	}
	// The last batch may still be held or on its way: SHUTDOWN sends it.
	lambda.shutdown(2 * time.Second)
	begin := time.Now()
	if code := waitExit(t, rc, 3*time.Second); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, log)
	}
	if took := time.Since(begin); took >= 2*time.Second {
		t.Errorf("SHUTDOWN took %v; Lambda allows 2s", took)
	}
	if n := backend.answers(); n != 3 {
		t.Errorf("backend answered %d request(s) by the end; want all 3 delivered; log:\n%s", n, log)
	}
	if n := strings.Count(log.String(), `export path "no freeze"`); n != 1 {
		t.Errorf("%d lines naming the no-freeze path, want 1:\n%s", n, log)
	}
	for _, bad := range []string{"WARN", "synchronously", "lost"} {
		if strings.Contains(log.String(), bad) {
			t.Errorf("%q in the log of a healthy no-freeze run:\n%s", bad, log)
		}
	}
}

// Lambda Managed Instances refuse INVOKE for extensions; the extension asks for SHUTDOWN only.
func TestManagedInstancesRegisterForShutdownOnly(t *testing.T) {
	captureLog(t)
	t.Setenv(initTypeEnv, "lambda-managed-instances")
	backend := newFakeBackend(t, 0)
	lambda := newFakeLambda(t, backend)
	receiver := freePort(t)
	writeConfig(t, receiver, backend.srv.URL)
	rc := startExtension(t)
	lambda.waitNext(10 * time.Second)
	sdkExport(t, receiver)
	if n := backend.received(); n != 1 {
		t.Errorf("backend got %d request(s); want the export passed straight through", n)
	}
	lambda.shutdown(2 * time.Second)
	if code := waitExit(t, rc, 3*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !slices.Equal(lambda.registered, []string{"SHUTDOWN"}) || lambda.listener != "" {
		t.Errorf("registered %v, subscribed %q", lambda.registered, lambda.listener)
	}
}

// A config that does not load fails Init, naming the variable and the reason.
func TestBadConfigFailsInitNamingTheVariable(t *testing.T) {
	captureLog(t)
	lambda := newFakeLambda(t, nil)
	t.Setenv(configURIEnv, "")
	t.Setenv(configFileEnv, "yaml:exporters: {nope: {}}")
	rc := startExtension(t)
	if code := waitExit(t, rc, 10*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	reports := lambda.errorReports()
	if len(reports) != 1 {
		t.Fatalf("error reports: %q", reports)
	}
	for _, want := range []string{"/2020-01-01/extension/init/error Extension.ConfigInvalid ",
		configFileEnv + "=yaml:", "unknown type: \\\"nope\\\""} {
		if !strings.Contains(reports[0], want) {
			t.Errorf("init error %q lacks %q", reports[0], want)
		}
	}
}
