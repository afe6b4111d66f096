// telemetryrecords.go: Telemetry API events (schema 2022-12-13) as OTLP log records.
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// maxLine is Lambda's limit for one log line; a longer body is cut to it.
const maxLine = 256 << 10

// attrRequestID is the semantic-conventions name of the invocation's request id.
const attrRequestID = "faas.invocation_id"

// telemetryRecord is one event, parsed: what a log record needs.
type telemetryRecord struct {
	eventType string
	requestID string
	observed  time.Time // the event's "time"
	at        time.Time // the line's own time, where it gives one
	severity  plog.SeverityNumber
	level     string // the severity as the line gives it
	body      string
	traceID   pcommon.TraceID
	spanID    pcommon.SpanID
	attrs     map[string]any
}

// parseTelemetryEvent reads one event. current is the request under way, for lines
// that do not name theirs (a print() in text format).
func parseTelemetryEvent(e telemetryEvent, current string) telemetryRecord {
	rec := telemetryRecord{eventType: e.Type, requestID: current}
	rec.observed, _ = time.Parse(time.RFC3339Nano, e.Time)
	var fields map[string]any
	var line string
	switch {
	case json.Unmarshal(e.Record, &line) == nil:
		rec.parseTextLine(line)
	case json.Unmarshal(e.Record, &fields) == nil && strings.HasPrefix(e.Type, streamPlatform+"."):
		rec.parsePlatform(fields)
	case fields != nil:
		rec.parseJSONLine(fields)
	default:
		rec.body = string(e.Record)
	}
	rec.body = cleanLine(rec.body)
	return rec
}

// parseTextLine reads the Python runtime's text format, "[LEVEL]\tTIME\tREQUEST ID\tMESSAGE";
// any other line is kept whole, without a severity.
func (r *telemetryRecord) parseTextLine(line string) {
	line = strings.TrimSuffix(line, "\n")
	r.body = line
	f := strings.SplitN(line, "\t", 4)
	if len(f) != 4 || !strings.HasPrefix(f[0], "[") || !strings.HasSuffix(f[0], "]") {
		return
	}
	at, err := time.Parse(time.RFC3339Nano, f[1])
	if err != nil {
		return
	}
	r.at, r.body = at, f[3]
	r.setLevel(strings.Trim(f[0], "[]"))
	if f[2] != "" {
		r.requestID = f[2]
	}
}

// parseJSONLine reads a line in Lambda's JSON format (AWS_LAMBDA_LOG_FORMAT=JSON):
// timestamp, level, message, requestId, and the trace and span ids where the line
// carries them; other fields become attributes.
func (r *telemetryRecord) parseJSONLine(f map[string]any) {
	if s, ok := take(f, "timestamp").(string); ok {
		r.at, _ = time.Parse(time.RFC3339Nano, s)
	}
	if s, ok := take(f, "level").(string); ok {
		r.setLevel(s)
	}
	if s, ok := take(f, "requestId").(string); ok && s != "" {
		r.requestID = s
	}
	switch m := take(f, "message").(type) {
	case string:
		r.body = m
	case nil:
	default:
		b, _ := json.Marshal(m)
		r.body = string(b)
	}
	for _, k := range []string{"traceId", "trace_id", "otelTraceID"} {
		if s, ok := f[k].(string); ok && hexInto(r.traceID[:], s) {
			delete(f, k)
		}
	}
	for _, k := range []string{"spanId", "span_id", "otelSpanID"} {
		if s, ok := f[k].(string); ok && hexInto(r.spanID[:], s) {
			delete(f, k)
		}
	}
	r.attrs = f
}

// parsePlatform reads a platform event: the body names it and its request, its fields
// and metrics (durationMs, billedDurationMs, maxMemoryUsedMB, ...) become attributes.
func (r *telemetryRecord) parsePlatform(f map[string]any) {
	if s, ok := take(f, "requestId").(string); ok {
		r.requestID = s
	}
	r.setLevel("INFO")
	if s, ok := f["status"].(string); ok && s != "success" {
		r.setLevel("ERROR")
	}
	var parts []string
	if metrics, ok := take(f, "metrics").(map[string]any); ok {
		for k, v := range metrics {
			f["metrics."+k] = v
			parts = append(parts, fmt.Sprintf("%s: %v", k, v))
		}
	}
	slices.Sort(parts)
	r.body = strings.TrimSpace(r.eventType + " " + r.requestID + " " + strings.Join(parts, ", "))
	r.attrs = f
}

func take(f map[string]any, key string) any {
	v := f[key]
	delete(f, key)
	return v
}

// hexInto fills id from s, all of it hex and of id's length, not all zeros.
func hexInto(id []byte, s string) bool {
	if len(s) != 2*len(id) {
		return false
	}
	b, err := hex.DecodeString(s)
	if err != nil || !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
		return false
	}
	copy(id, b)
	return true
}

func (r *telemetryRecord) setLevel(level string) {
	r.severity = severityOf(level)
	if r.severity != plog.SeverityNumberUnspecified {
		r.level = strings.ToUpper(level)
	}
}

func severityOf(level string) plog.SeverityNumber {
	switch strings.ToUpper(level) {
	case "TRACE":
		return plog.SeverityNumberTrace
	case "DEBUG":
		return plog.SeverityNumberDebug
	case "INFO":
		return plog.SeverityNumberInfo
	case "WARN", "WARNING":
		return plog.SeverityNumberWarn
	case "ERROR":
		return plog.SeverityNumberError
	case "FATAL", "CRITICAL":
		return plog.SeverityNumberFatal
	}
	return plog.SeverityNumberUnspecified
}

// cleanLine keeps a line valid UTF-8 (each invalid byte becomes U+FFFD) and within
// maxLine, cut at a character boundary and marked as cut.
func cleanLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxLine {
		return s
	}
	n := maxLine
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + fmt.Sprintf(" [cut: %d bytes in all]", len(s))
}

// logsFromRecords builds one plog.Logs, the function as its resource.
func logsFromRecords(records []telemetryRecord) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	res := rl.Resource().Attributes()
	res.PutStr("cloud.provider", "aws")
	res.PutStr("cloud.platform", "aws_lambda")
	for key, env := range map[string]string{
		"cloud.region": "AWS_REGION", "faas.name": "AWS_LAMBDA_FUNCTION_NAME",
		"service.name": "AWS_LAMBDA_FUNCTION_NAME", "faas.version": "AWS_LAMBDA_FUNCTION_VERSION",
	} {
		if v := os.Getenv(env); v != "" {
			res.PutStr(key, v)
		}
	}
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(telemetryAPIType.String())
	for _, rec := range records {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(rec.observed))
		at := rec.at
		if at.IsZero() {
			at = rec.observed
		}
		lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
		if rec.severity != plog.SeverityNumberUnspecified {
			lr.SetSeverityNumber(rec.severity)
			lr.SetSeverityText(rec.level)
		}
		lr.Body().SetStr(rec.body)
		lr.SetTraceID(rec.traceID)
		lr.SetSpanID(rec.spanID)
		attrs := lr.Attributes()
		for k, v := range rec.attrs {
			if attrs.PutEmpty(k).FromRaw(v) != nil {
				attrs.PutStr(k, fmt.Sprint(v))
			}
		}
		attrs.PutStr("type", rec.eventType)
		if rec.requestID != "" {
			attrs.PutStr(attrRequestID, rec.requestID)
		}
	}
	return ld
}
