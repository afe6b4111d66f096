// bench_test.go: the lifecycle against four backends, 20 invocations each (make bench runs it).
package main

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// BenchmarkBackends runs b.N invocations (make bench: -benchtime 20x) against a fake
// Lambda for each backend, and reports per invocation the SDK's wait for the collector
// (invoke-ms, median), runtimeDone to event/next, when Lambda would freeze the sandbox
// (freeze-ms, median and max), and over the run the backend's requests (retries of a
// 503 included), the batches it received and did not refuse, those it got more than
// once (duplicated), and the requests it accepted with 200.
func BenchmarkBackends(b *testing.B) {
	for _, c := range []struct {
		name  string
		delay time.Duration
		setup func(*fakeBackend) string // the exporter's endpoint
	}{
		{"at_once", 0, func(f *fakeBackend) string { return f.srv.URL }},
		{"1s_late", time.Second, func(f *fakeBackend) string { return f.srv.URL }},
		{"503", 0, func(f *fakeBackend) string { f.refuse = 1 << 30; return f.srv.URL }},
		{"unreachable", 0, func(*fakeBackend) string {
			gone := httptest.NewServer(nil)
			gone.Close()
			return gone.URL // nothing listens there any more: connection refused
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.Setenv(logLevelEnv, "fatal") // the collector's lines would break the table
			backend := newFakeBackend(b, c.delay)
			sb := startSandbox(b, backend, c.setup(backend))
			lambda, receiver := sb.lambda, sb.receiver
			b.ResetTimer()
			var invoke, freeze []time.Duration
			for i := 0; i < b.N; i++ {
				export, _, froze := lambda.invocation(receiver, fmt.Sprintf("r%d", i))
				invoke = append(invoke, export)
				freeze = append(freeze, froze)
			}
			b.StopTimer()
			sb.shutdown(b)
			once, dup := 0, 0
			for _, n := range backend.spanCounts() {
				once++
				dup += n - 1
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(ms(median(invoke)), "invoke-ms")
			b.ReportMetric(ms(median(freeze)), "freeze-ms")
			b.ReportMetric(ms(slices.Max(freeze)), "freeze-max-ms")
			b.ReportMetric(float64(backend.received()), "requests")
			b.ReportMetric(float64(once), "received")
			b.ReportMetric(float64(dup), "duplicated")
			b.ReportMetric(float64(backend.answers()), "accepted")
		})
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
