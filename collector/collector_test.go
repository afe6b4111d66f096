package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/component"
)

func names[T any](m map[component.Type]T) []string {
	var out []string
	for t := range m {
		out = append(out, t.String())
	}
	slices.Sort(out)
	return out
}

func TestComponentsAreTheReducedSet(t *testing.T) {
	f, err := components()
	if err != nil {
		t.Fatal(err)
	}
	check := func(kind string, got, want []string) {
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", kind, got, want)
		}
	}
	check("receivers", names(f.Receivers), []string{"otlp"})
	check("exporters", names(f.Exporters), []string{"awsemf", "awsxray", "debug", "otlp", "otlphttp", "prometheusremotewrite"})
	check("extensions", names(f.Extensions), []string{"sigv4auth"})
	check("processors", names(f.Processors), nil)
	check("connectors", names(f.Connectors), nil)
}

// fakeExtensionsAPI serves register and event/next (one INVOKE, then
// SHUTDOWN) and records the calls it saw.
type fakeExtensionsAPI struct {
	mu     sync.Mutex
	calls  []string
	events []string
}

func (f *fakeExtensionsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path+" "+r.Header.Get("Lambda-Extension-Name")+r.Header.Get("Lambda-Extension-Identifier"))
	switch r.URL.Path {
	case "/2020-01-01/extension/register":
		w.Header().Set("Lambda-Extension-Identifier", "ext-id")
		w.Write([]byte(`{}`))
	case "/2020-01-01/extension/event/next":
		ev := f.events[0]
		f.events = f.events[1:]
		w.Write([]byte(ev))
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

func TestRunExtensionRegistersAndExitsOnShutdown(t *testing.T) {
	api := &fakeExtensionsAPI{events: []string{
		`{"eventType":"INVOKE","requestId":"r1"}`,
		`{"eventType":"SHUTDOWN","shutdownReason":"spindown"}`,
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()

	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte(`
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:0"}
      http: {endpoint: "127.0.0.1:0"}
exporters:
  debug: {}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], exporters: [debug]}
`), 0o600)
	t.Setenv("AWS_LAMBDA_RUNTIME_API", strings.TrimPrefix(srv.URL, "http://"))
	t.Setenv("OPENTELEMETRY_COLLECTOR_CONFIG_URI", cfg)

	if rc := runExtension(settings()); rc != 0 {
		t.Fatalf("runExtension returned %d, calls %v", rc, api.calls)
	}
	want := []string{
		"POST /2020-01-01/extension/register " + filepath.Base(os.Args[0]),
		"GET /2020-01-01/extension/event/next ext-id",
		"GET /2020-01-01/extension/event/next ext-id",
	}
	if !slices.Equal(api.calls, want) {
		t.Errorf("calls: got %q, want %q", api.calls, want)
	}
}

func TestRunExtensionReportsABadConfigAsInitError(t *testing.T) {
	api := &fakeExtensionsAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	t.Setenv("AWS_LAMBDA_RUNTIME_API", strings.TrimPrefix(srv.URL, "http://"))
	t.Setenv("OPENTELEMETRY_COLLECTOR_CONFIG_URI", "yaml:receivers: {nope: {}}")

	if rc := runExtension(settings()); rc != 1 {
		t.Fatalf("runExtension returned %d, want 1", rc)
	}
	if n := len(api.calls); n != 2 || !strings.HasPrefix(api.calls[1], "POST /2020-01-01/extension/init/error") {
		t.Errorf("calls: %q", api.calls)
	}
}
