// fakes_test.go: a fake Lambda (Extensions + Telemetry API), a fake OTLP backend and an SDK stand-in.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// fakeLambda serves the Extensions and Telemetry APIs. event/next hands out the events
// the test queues with push, and records, at each call, what the backend had received.
type fakeLambda struct {
	t          testing.TB
	srv        *httptest.Server
	subscribe  int    // status for PUT /telemetry; 0: 200 with {}
	subBody    string // body of that answer when subscribe is set
	backend    *fakeBackend
	events     chan string
	mu         sync.Mutex
	registered []string // events asked for at register
	listener   string   // destination URI of the subscription
	types      []string // the types it asked for
	nextCalls  []nextCall
	nextCalled chan struct{}
	errors     []string // "<path> <error type> <message>"
}

type nextCall struct {
	at       time.Time
	received int // backend requests seen by then
}

func newFakeLambda(t testing.TB, backend *fakeBackend) *fakeLambda {
	f := &fakeLambda{t: t, backend: backend, events: make(chan string, 8), nextCalled: make(chan struct{}, 8)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Setenv("AWS_LAMBDA_RUNTIME_API", strings.TrimPrefix(f.srv.URL, "http://"))
	t.Setenv(listenerHostEnv, "127.0.0.1")
	return f
}

func (f *fakeLambda) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/2020-01-01/extension/register":
		var req struct{ Events []string }
		json.Unmarshal(body, &req)
		f.mu.Lock()
		f.registered = req.Events
		f.mu.Unlock()
		w.Header().Set("Lambda-Extension-Identifier", "ext-id")
		w.Write([]byte(`{}`))
	case "/2022-07-01/telemetry":
		var req struct {
			Types       []string
			Destination struct{ URI string }
		}
		json.Unmarshal(body, &req)
		f.mu.Lock()
		f.listener = req.Destination.URI
		f.types = req.Types
		f.mu.Unlock()
		if f.subscribe != 0 {
			if f.subBody != "" {
				w.Header().Set("Content-Type", "application/json")
			}
			w.WriteHeader(f.subscribe)
			w.Write([]byte(f.subBody))
			return
		}
		w.Write([]byte(`{}`))
	case "/2020-01-01/extension/event/next":
		call := nextCall{at: time.Now()}
		if f.backend != nil {
			call.received = f.backend.received()
		}
		f.mu.Lock()
		f.nextCalls = append(f.nextCalls, call)
		f.mu.Unlock()
		f.nextCalled <- struct{}{}
		select {
		case ev := <-f.events:
			w.Write([]byte(ev))
		case <-r.Context().Done():
		}
	default: // init/error, exit/error
		f.mu.Lock()
		f.errors = append(f.errors, r.URL.Path+" "+r.Header.Get("Lambda-Extension-Function-Error-Type")+" "+string(body))
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}
}

// waitNext waits for the extension's next event/next call and returns it.
func (f *fakeLambda) waitNext(within time.Duration) nextCall {
	f.t.Helper()
	select {
	case <-f.nextCalled:
	case <-time.After(within):
		f.t.Fatalf("no event/next call within %v", within)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nextCalls[len(f.nextCalls)-1]
}

func (f *fakeLambda) invoke(requestID string, timeout time.Duration) {
	f.events <- fmt.Sprintf(`{"eventType":"INVOKE","requestId":%q,"deadlineMs":%d}`,
		requestID, time.Now().Add(timeout).UnixMilli())
}

func (f *fakeLambda) shutdown(within time.Duration) {
	f.events <- fmt.Sprintf(`{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":%d}`,
		time.Now().Add(within).UnixMilli())
}

// invocation runs one invocation as Lambda does when its events are on time: INVOKE,
// platform.start, the SDK's export of a span named id, runtimeDone. It returns how long
// the export took and the event/next call that followed, with the time from
// runtimeDone to it (when Lambda would freeze the sandbox).
func (f *fakeLambda) invocation(receiver, id string) (export time.Duration, next nextCall, freeze time.Duration) {
	f.t.Helper()
	f.invoke(id, 10*time.Second)
	f.platform(eventStart, id)
	export = sdkExportSpan(f.t, receiver, id)
	done := time.Now()
	f.platform(eventRuntimeDone, id)
	next = f.waitNext(10 * time.Second)
	return export, next, next.at.Sub(done)
}

// platform POSTs one platform event to the extension's listener, as Lambda does.
func (f *fakeLambda) platform(eventType, requestID string) {
	f.t.Helper()
	f.post(platformEvent(eventType, requestID))
}

// platformEvent is one event of the batch Lambda POSTs, as JSON.
func platformEvent(eventType, requestID string) string {
	return fmt.Sprintf(`{"time":%q,"type":%q,"record":{"requestId":%q,"status":"success"}}`,
		time.Now().UTC().Format(time.RFC3339Nano), eventType, requestID)
}

// post POSTs a batch of events, given as JSON objects, to the extension's listener.
func (f *fakeLambda) post(events ...string) {
	f.t.Helper()
	f.mu.Lock()
	uri := f.listener
	f.mu.Unlock()
	resp, err := http.Post(uri, "application/json", strings.NewReader("["+strings.Join(events, ",")+"]"))
	if err != nil {
		f.t.Fatalf("posting events: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("posting events: %s", resp.Status)
	}
}

func (f *fakeLambda) errorReports() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.errors...)
}

// fakeBackend is an OTLP/HTTP endpoint that answers after delay; it counts requests
// when they arrive, which is when the data has reached the receiver, and again when
// it answers, which is when the exporter's send completes.
type fakeBackend struct {
	srv      *httptest.Server
	mu       sync.Mutex
	delay    time.Duration
	refuse   int // answer this many requests, the first ones, with 503
	count    int
	answered int            // requests answered 200
	logs     []plog.Logs    // what reached /v1/logs
	spans    map[string]int // span name -> times received at /v1/traces, not refused
}

func newFakeBackend(t testing.TB, delay time.Duration) *fakeBackend {
	b := &fakeBackend{delay: delay, spans: map[string]int{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
				body, _ = io.ReadAll(zr)
			}
		}
		b.mu.Lock()
		b.count++
		d := b.delay
		refuse := b.count <= b.refuse
		b.record(r.URL.Path, body, refuse)
		b.mu.Unlock()
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		if refuse {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b.mu.Lock()
		b.answered++
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *fakeBackend) received() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

// record keeps what a request carried: the spans' names (unless refused) and the logs.
func (b *fakeBackend) record(path string, body []byte, refused bool) {
	switch path {
	case "/v1/traces":
		req := ptraceotlp.NewExportRequest()
		if !refused && req.UnmarshalProto(body) == nil {
			countSpans(b.spans, req.Traces())
		}
	case "/v1/logs":
		req := plogotlp.NewExportRequest()
		if req.UnmarshalProto(body) == nil {
			b.logs = append(b.logs, req.Logs())
		}
	}
}

func countSpans(into map[string]int, td ptrace.Traces) {
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		ss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < ss.Len(); j++ {
			spans := ss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				into[spans.At(k).Name()]++
			}
		}
	}
}

// spanCounts returns, per span name, how many times the backend received it.
func (b *fakeBackend) spanCounts() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.spans)
}

// logRecords returns every log record received so far.
func (b *fakeBackend) logRecords() []plog.LogRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []plog.LogRecord
	for _, ld := range b.logs {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					out = append(out, lrs.At(k))
				}
			}
		}
	}
	return out
}

func (b *fakeBackend) answers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.answered
}

// waitReceived polls until the backend has received n requests or within has passed.
func (b *fakeBackend) waitReceived(n int, within time.Duration) bool {
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if b.received() >= n {
			return true
		}
	}
	return b.received() >= n
}

func (b *fakeBackend) setDelay(d time.Duration) {
	b.mu.Lock()
	b.delay = d
	b.mu.Unlock()
}

// sdkExport sends one span to the collector's OTLP/HTTP receiver, as the SDK's
// end-of-invocation flush does, and returns how long the collector took to answer.
func sdkExport(t testing.TB, receiver string) time.Duration {
	t.Helper()
	return sdkExportSpan(t, receiver, "handler")
}

// sdkExportSpan is sdkExport with a span of the given name.
func sdkExportSpan(t testing.TB, receiver, name string) time.Duration {
	t.Helper()
	td := ptrace.NewTraces()
	span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName(name)
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	resp, err := http.Post("http://"+receiver+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("SDK export: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SDK export: %s", resp.Status)
	}
	return time.Since(begin)
}

// freePort returns a local address nothing listens on right now.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeConfig writes a config with an OTLP/HTTP receiver on receiver and an otlphttp
// exporter to backend, and points OPENTELEMETRY_COLLECTOR_CONFIG_URI at it.
func writeConfig(t testing.TB, receiver, backend string) {
	t.Helper()
	writeConfigWith(t, receiver, backend, "")
}

// writeConfigWith is writeConfig plus, when types is set, a telemetryapi receiver of
// those types (YAML list) feeding a logs pipeline to the same backend.
func writeConfigWith(t testing.TB, receiver, backend, types string) {
	t.Helper()
	var telemetry, logs string
	if types != "" {
		telemetry = "  telemetryapi: {types: " + types + "}\n"
		logs = "    logs: {receivers: [telemetryapi], exporters: [otlphttp]}\n"
	}
	useConfigText(t, fmt.Sprintf(`
receivers:
  otlp:
    protocols:
      http: {endpoint: %q}
%sexporters:
  otlphttp: {endpoint: %q}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [otlphttp]}
%s`, receiver, telemetry, backend, logs))
}

// useConfigText writes cfg to a file and points OPENTELEMETRY_COLLECTOR_CONFIG_URI at it.
func useConfigText(t testing.TB, cfg string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(configURIEnv, path)
}

// captureLog sends the extension's log lines to a buffer for the test's duration.
func captureLog(t testing.TB) *syncBuffer {
	out := &syncBuffer{}
	old := logger
	logger = newLogger(out, "debug")
	t.Cleanup(func() { logger = old })
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// setVar overrides a package variable for one test.
func setVar[T any](t *testing.T, v *T, val T) {
	old := *v
	*v = val
	t.Cleanup(func() { *v = old })
}
