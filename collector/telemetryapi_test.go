// telemetryapi_test.go: the telemetryapi receiver: records from each format, bad lines, one subscription, the drain.
package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
)

func event(t *testing.T, eventType string, record any) telemetryEvent {
	t.Helper()
	raw, err := json.Marshal(record)
	if err != nil {
		t.Fatal(err)
	}
	return telemetryEvent{Time: "2026-12-08T01:02:03.5Z", Type: eventType, Record: raw}
}

func oneRecord(t *testing.T, e telemetryEvent, current string) plog.LogRecord {
	t.Helper()
	ld := logsFromRecords([]telemetryRecord{parseTelemetryEvent(e, current)})
	if n := ld.LogRecordCount(); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
	return ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
}

func attr(lr plog.LogRecord, key string) string {
	v, _ := lr.Attributes().Get(key)
	return v.AsString()
}

func TestTextLinesGiveTimeSeverityAndRequestID(t *testing.T) {
	lr := oneRecord(t, event(t, "function", "[WARNING]\t2026-12-08T01:02:03.250Z\treq-7\tdisk almost full\n"), "req-1")
	if lr.Body().Str() != "disk almost full" || lr.SeverityNumber() != plog.SeverityNumberWarn || lr.SeverityText() != "WARNING" {
		t.Errorf("body %q severity %v %q", lr.Body().Str(), lr.SeverityNumber(), lr.SeverityText())
	}
	if got := lr.Timestamp().AsTime(); !got.Equal(time.Date(2026, 12, 8, 1, 2, 3, 250e6, time.UTC)) {
		t.Errorf("time %v, want the line's", got)
	}
	if attr(lr, "faas.invocation_id") != "req-7" || attr(lr, "type") != "function" {
		t.Errorf("attributes %v", lr.Attributes().AsRaw())
	}
	// A print(): the whole line, no severity, the request under way, the event's time.
	lr = oneRecord(t, event(t, "function", "hello from print\n"), "req-1")
	if lr.Body().Str() != "hello from print" || lr.SeverityNumber() != plog.SeverityNumberUnspecified ||
		attr(lr, "faas.invocation_id") != "req-1" {
		t.Errorf("print line: body %q severity %v attributes %v", lr.Body().Str(), lr.SeverityNumber(), lr.Attributes().AsRaw())
	}
	if got := lr.Timestamp().AsTime(); !got.Equal(time.Date(2026, 12, 8, 1, 2, 3, 500e6, time.UTC)) {
		t.Errorf("print line time %v, want the event's", got)
	}
}

func TestJSONLinesGiveTraceAndSpanIDs(t *testing.T) {
	lr := oneRecord(t, event(t, "function", map[string]any{
		"timestamp": "2026-12-08T01:02:03.125Z", "level": "ERROR", "message": "boom",
		"requestId": "req-9", "logger": "app", "traceId": "0af7651916cd43dd8448eb211c80319c",
		"spanId": "b7ad6b7169203331",
	}), "req-1")
	if lr.Body().Str() != "boom" || lr.SeverityNumber() != plog.SeverityNumberError {
		t.Errorf("body %q severity %v", lr.Body().Str(), lr.SeverityNumber())
	}
	if lr.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || lr.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("trace %s span %s", lr.TraceID(), lr.SpanID())
	}
	if attr(lr, "faas.invocation_id") != "req-9" || attr(lr, "logger") != "app" {
		t.Errorf("attributes %v", lr.Attributes().AsRaw())
	}
	if _, has := lr.Attributes().Get("traceId"); has {
		t.Errorf("traceId kept as an attribute too: %v", lr.Attributes().AsRaw())
	}
	// Ids that are not hex of the right length stay attributes; the record has none.
	lr = oneRecord(t, event(t, "function", map[string]any{"message": "m", "traceId": "1-5759e988-bd862e3fe1be46a994272793"}), "")
	if !lr.TraceID().IsEmpty() || attr(lr, "traceId") == "" {
		t.Errorf("an X-Ray id taken as an OTel trace id: %s %v", lr.TraceID(), lr.Attributes().AsRaw())
	}
}

func TestPlatformReportGivesItsMetrics(t *testing.T) {
	lr := oneRecord(t, event(t, "platform.report", map[string]any{
		"requestId": "req-3", "status": "success",
		"metrics": map[string]any{"durationMs": 12.5, "billedDurationMs": 13, "maxMemoryUsedMB": 70},
	}), "")
	if v, _ := lr.Attributes().Get("metrics.durationMs"); v.Double() != 12.5 {
		t.Errorf("attributes %v", lr.Attributes().AsRaw())
	}
	if !strings.HasPrefix(lr.Body().Str(), "platform.report req-3 ") || attr(lr, "faas.invocation_id") != "req-3" ||
		lr.SeverityNumber() != plog.SeverityNumberInfo {
		t.Errorf("body %q attributes %v", lr.Body().Str(), lr.Attributes().AsRaw())
	}
	lr = oneRecord(t, event(t, "platform.runtimeDone", map[string]any{"requestId": "req-3", "status": "timeout"}), "")
	if lr.SeverityNumber() != plog.SeverityNumberError {
		t.Errorf("a timed-out runtimeDone has severity %v", lr.SeverityNumber())
	}
}

// A line over 256 KiB, or with bytes that are not UTF-8, is kept, cut and made valid.
func TestLongAndInvalidLinesAreCutAndMadeValid(t *testing.T) {
	long := strings.Repeat("é", maxLine) // 2 bytes each: twice the limit
	lr := oneRecord(t, event(t, "function", long), "")
	body := lr.Body().Str()
	if len(body) > maxLine+64 || !strings.HasSuffix(body, fmt.Sprintf("[cut: %d bytes in all]", len(long))) {
		t.Errorf("cut body: %d bytes, ends %q", len(body), body[len(body)-40:])
	}
	if !strings.HasPrefix(body, "éé") || strings.ContainsRune(body, '\uFFFD') {
		t.Errorf("the cut split a character")
	}
	e := telemetryEvent{Time: "2026-12-08T01:02:03Z", Type: "function", Record: []byte("\"bad \xff\xfe bytes\"")}
	if got := oneRecord(t, e, "").Body().Str(); got != "bad \uFFFD\uFFFD bytes" {
		t.Errorf("invalid UTF-8 became %q", got)
	}
	// A record neither string nor object is kept as its JSON text, made valid too.
	odd := telemetryEvent{Type: "function", Record: []byte("[\"\xff\"]")}
	if got := oneRecord(t, odd, "").Body().Str(); got != "[\"\uFFFD\"]" {
		t.Errorf("an array record with a bad byte became %q", got)
	}
	if _, err := (&plog.ProtoMarshaler{}).MarshalLogs(logsFromRecords([]telemetryRecord{parseTelemetryEvent(e, "")})); err != nil {
		t.Errorf("the record does not marshal: %v", err)
	}
}

// The handler's log line, streamed before runtimeDone, reaches the backend as a log
// record with its request id before event/next; one subscription asks for both types.
func TestFunctionLogsArriveBeforeTheFreeze(t *testing.T) {
	log := captureLog(t)
	backend := newFakeBackend(t, 100*time.Millisecond)
	lambda := newFakeLambda(t, backend)
	receiver := freePort(t)
	writeConfigWith(t, receiver, backend.srv.URL, "[function]")
	rc := startExtension(t)
	lambda.waitNext(10 * time.Second)
	if !slices.Equal(lambda.types, []string{"function", "platform"}) {
		t.Errorf("subscribed to %v; want the one subscription to ask for function and platform", lambda.types)
	}

	lambda.invoke("r1", 10*time.Second)
	lambda.post(platformEvent(eventStart, "r1"))
	line, _ := json.Marshal("[INFO]\t2026-12-08T01:02:03.000Z\tr1\thandled order 42\n")
	lambda.post(fmt.Sprintf(`{"time":"2026-12-08T01:02:03.001Z","type":"function","record":%s}`, line),
		platformEvent(eventRuntimeDone, "r1"))
	lambda.waitNext(5 * time.Second)
	records := backend.logRecords()
	if len(records) != 1 || records[0].Body().Str() != "handled order 42" || attr(records[0], "faas.invocation_id") != "r1" {
		var got []string
		for _, r := range records {
			got = append(got, fmt.Sprint(r.Body().AsRaw(), r.Attributes().AsRaw()))
		}
		t.Errorf("backend had %q at event/next; want the handler's line with request id r1; log:\n%s", got, log)
	}
	lambda.shutdown(2 * time.Second)
	if code := waitExit(t, rc, 3*time.Second); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, log)
	}
}

// An unknown type fails Init with init/error naming it.
func TestUnknownTelemetryTypeFailsInit(t *testing.T) {
	captureLog(t)
	lambda := newFakeLambda(t, nil)
	writeConfigWith(t, freePort(t), "http://127.0.0.1:9", "[function, logs]")
	if code := waitExit(t, startExtension(t), 10*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	reports := lambda.errorReports()
	if len(reports) != 1 || !strings.Contains(reports[0], "/2020-01-01/extension/init/error Extension.ConfigInvalid ") ||
		!strings.Contains(reports[0], `unknown type \"logs\"`) {
		t.Errorf("error reports %q; want one init/error naming the type", reports)
	}
}
