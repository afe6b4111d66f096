// config_test.go: every way ADOT collector 0.35.0 configs are given and written loads here.
package main

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/config/configtelemetry"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.uber.org/zap/zapcore"
)

// TestMain trusts httptest's TLS certificate (the same for every httptest server), so
// the https provider, which uses the system roots, can fetch from one.
func TestMain(m *testing.M) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	dir, err := os.MkdirTemp("", "collector-test")
	if err != nil {
		panic(err)
	}
	certFile := filepath.Join(dir, "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(certFile, pemBytes, 0o600); err != nil {
		panic(err)
	}
	srv.Close()
	os.Setenv("SSL_CERT_FILE", certFile)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// loadConfig resolves, converts and validates the config the environment names.
func loadConfig(t *testing.T) *otelcol.Config {
	t.Helper()
	set := collectorSettings(newExportBuffer(), newTelemetryHub(), configSourceFromEnv())
	provider, err := otelcol.NewConfigProvider(set.ConfigProviderSettings)
	if err != nil {
		t.Fatal(err)
	}
	factories, err := set.Factories()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := provider.Get(context.Background(), factories)
	if err != nil {
		t.Fatalf("config does not load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config invalid: %v", err)
	}
	return cfg
}

func useConfig(t *testing.T, variable, uri string) {
	t.Setenv(configURIEnv, "")
	t.Setenv(configFileEnv, "")
	t.Setenv(variable, uri)
}

func ids(list []component.ID) []string {
	var out []string
	for _, id := range list {
		out = append(out, id.String())
	}
	return out
}

// checkLambdaShape: every pipeline ends in lambdabuffer, and no metrics endpoint.
func checkLambdaShape(t *testing.T, cfg *otelcol.Config) {
	t.Helper()
	for id, p := range cfg.Service.Pipelines {
		if got := ids(p.Processors); len(got) == 0 || got[len(got)-1] != "lambdabuffer" || slices.Index(got, "lambdabuffer") != len(got)-1 {
			t.Errorf("pipeline %s processors %v: want lambdabuffer last, once", id, got)
		}
	}
	if lv := cfg.Service.Telemetry.Metrics.Level; lv != configtelemetry.LevelNone {
		t.Errorf("telemetry metrics level %v, want none", lv)
	}
}

func TestADOTDefaultConfigWithLoggingLoads(t *testing.T) {
	useConfig(t, configFileEnv, "testdata/adot-0.35-default.yaml")
	cfg := loadConfig(t)
	if _, ok := cfg.Exporters[component.MustNewID("logging")]; !ok {
		t.Errorf("no logging exporter in %v", cfg.Exporters)
	}
	checkLambdaShape(t, cfg)
}

func TestLayerDefaultConfigWithDebugLoads(t *testing.T) {
	useConfig(t, configURIEnv, "file:../collector-config/config.yaml")
	cfg := loadConfig(t)
	if _, ok := cfg.Exporters[component.MustNewID("debug")]; !ok {
		t.Errorf("no debug exporter in %v", cfg.Exporters)
	}
	checkLambdaShape(t, cfg)
}

func TestConfigFromEnvAndYAMLProviders(t *testing.T) {
	doc := "{receivers: {otlp: {protocols: {http: {endpoint: 'localhost:4318'}}}}, exporters: {debug: {}}, " +
		"service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}}"
	t.Setenv("MY_COLLECTOR_CONFIG", doc)
	useConfig(t, configURIEnv, "env:MY_COLLECTOR_CONFIG")
	checkLambdaShape(t, loadConfig(t))
	useConfig(t, configURIEnv, "yaml:"+doc)
	checkLambdaShape(t, loadConfig(t))
}

// serveConfig serves testdata/name and records the requests' paths and auth headers.
func serveConfig(t *testing.T, name string, tls bool) (*httptest.Server, *[]string) {
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Write(body)
	})
	srv := httptest.NewUnstartedServer(h)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestConfigFromHTTPAndHTTPS(t *testing.T) {
	for _, tls := range []bool{false, true} {
		srv, seen := serveConfig(t, "adot-0.35-default.yaml", tls)
		useConfig(t, configFileEnv, srv.URL+"/config.yaml")
		checkLambdaShape(t, loadConfig(t))
		if len(*seen) != 1 {
			t.Errorf("%s: %d requests", srv.URL, len(*seen))
		}
	}
}

// The s3 provider, against a local S3-compatible endpoint: the AWS SDK takes the
// endpoint from AWS_ENDPOINT_URL_S3 and, for an IP address, uses path-style requests.
func TestConfigFromS3(t *testing.T) {
	srv, seen := serveConfig(t, "adot-0.35-default.yaml", false)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_S3":         srv.URL,
		"AWS_ACCESS_KEY_ID":           "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":       "secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "us-east-1",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             filepath.Join(t.TempDir(), "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
	} {
		t.Setenv(k, v)
	}
	useConfig(t, configURIEnv, "s3://my-config-bucket.s3.eu-west-1.amazonaws.com/lambda/config.yaml")
	checkLambdaShape(t, loadConfig(t))
	if len(*seen) != 1 {
		t.Fatalf("requests: %q", *seen)
	}
	req := (*seen)[0]
	if !strings.HasPrefix(req, "/my-config-bucket/lambda/config.yaml ") || !strings.Contains(req, "/eu-west-1/s3/") {
		t.Errorf("request %q: want the bucket and key from the URI, signed for its region", req)
	}
}

func TestConfigURIWinsOverConfigFile(t *testing.T) {
	log := captureLog(t)
	t.Setenv(configFileEnv, "/old/config.yaml")
	t.Setenv(configURIEnv, "")
	if got := configSourceFromEnv(); got.uri != "/old/config.yaml" || got.variable != configFileEnv {
		t.Errorf("CONFIG_FILE alone: %+v", got)
	}
	t.Setenv(configURIEnv, "/new/config.yaml")
	if got := configSourceFromEnv(); got.uri != "/new/config.yaml" || got.variable != configURIEnv {
		t.Errorf("both: %+v", got)
	}
	if !strings.Contains(log.String(), "using OPENTELEMETRY_COLLECTOR_CONFIG_URI=/new/config.yaml") {
		t.Errorf("no line saying which variable won:\n%s", log)
	}
	t.Setenv(configURIEnv, "")
	t.Setenv(configFileEnv, "")
	if got := configSourceFromEnv(); got.uri != defaultConfigPath || got.variable != "" {
		t.Errorf("neither: %+v", got)
	}
}

func TestDollarVarAndBracedVarExpand(t *testing.T) {
	t.Setenv("RECEIVER_PORT", "4318")
	t.Setenv("BACKEND_HOST", "otlp.example.com")
	t.Setenv("BUFFER_SIZE", "4096")
	t.Setenv("API_TOKEN", "Bearer a$b c$")
	useConfig(t, configURIEnv, "testdata/vars.yaml")
	cfg := loadConfig(t)
	recv := cfg.Receivers[component.MustNewID("otlp")].(*otlpreceiver.Config)
	if got := recv.HTTP.Endpoint; got != "localhost:4318" {
		t.Errorf("receiver endpoint %q", got)
	}
	exp := cfg.Exporters[component.MustNewID("otlphttp")].(*otlphttpexporter.Config)
	if exp.Endpoint != "https://otlp.example.com/otlp" {
		t.Errorf("endpoint %q", exp.Endpoint)
	}
	if exp.ReadBufferSize != 4096 {
		t.Errorf("read_buffer_size %d: a bare $VAR must give an integer field its number", exp.ReadBufferSize)
	}
	if got := string(exp.Headers["authorization"]); got != "Bearer a$b c$" {
		t.Errorf("a variable's value is expanded again: %q", got)
	}
	if got := string(exp.Headers["x-literal"]); got != "$NOT_A_VAR and 5$" {
		t.Errorf("escaped $$ or a lone $ changed: %q", got)
	}
}

func TestEveryQueueIsOffAndUserTelemetryLevelKept(t *testing.T) {
	useConfig(t, configURIEnv, "testdata/queues.yaml")
	cfg := loadConfig(t)
	if c := cfg.Exporters[component.MustNewID("otlp")].(*otlpexporter.Config); c.QueueConfig.Enabled {
		t.Error("otlp: sending_queue still enabled")
	}
	if c := cfg.Exporters[component.MustNewIDWithName("otlphttp", "backend")].(*otlphttpexporter.Config); c.QueueConfig.Enabled {
		t.Error("otlphttp/backend: sending_queue still enabled")
	}
	if c := cfg.Exporters[component.MustNewID("prometheusremotewrite")].(*prometheusremotewriteexporter.Config); c.RemoteWriteQueue.Enabled {
		t.Error("prometheusremotewrite: remote_write_queue still enabled")
	}
	logs := cfg.Service.Pipelines[component.MustNewID("logs")]
	if got := ids(logs.Processors); !slices.Equal(got, []string{"lambdabuffer"}) {
		t.Errorf("logs processors %v: lambdabuffer named by the user is not added twice", got)
	}
	if lv := cfg.Service.Telemetry.Metrics.Level; lv != configtelemetry.LevelBasic {
		t.Errorf("telemetry metrics level %v: a level the config sets is kept", lv)
	}
}

// Retries fit the drain timeout, so one 503 does not use up the drain waiting 5 s.
func TestRetriesAreBoundedByTheDrainTimeout(t *testing.T) {
	t.Setenv(drainTimeoutEnv, "800ms")
	useConfig(t, configURIEnv, "testdata/queues.yaml")
	cfg := loadConfig(t)
	for name, r := range map[string]configretry.BackOffConfig{
		"otlp":                  cfg.Exporters[component.MustNewID("otlp")].(*otlpexporter.Config).RetryConfig,
		"otlphttp/backend":      cfg.Exporters[component.MustNewIDWithName("otlphttp", "backend")].(*otlphttpexporter.Config).RetryConfig,
		"prometheusremotewrite": cfg.Exporters[component.MustNewID("prometheusremotewrite")].(*prometheusremotewriteexporter.Config).BackOffConfig,
	} {
		if r.MaxElapsedTime != 800*time.Millisecond || r.InitialInterval != 160*time.Millisecond || r.MaxInterval != 400*time.Millisecond {
			t.Errorf("%s: retry_on_failure %+v; want retries within the 800ms drain", name, r)
		}
	}
}

func TestLogLevelFromEnvironment(t *testing.T) {
	t.Setenv(logLevelEnv, "WARN")
	useConfig(t, configURIEnv, "testdata/adot-0.35-default.yaml")
	if lv := loadConfig(t).Service.Telemetry.Logs.Level; lv != zapcore.WarnLevel {
		t.Errorf("collector log level %v, want warn", lv)
	}
	if l := newLogger(&syncBuffer{}, "WARN"); l.min != levelWarn {
		t.Errorf("extension log level %v, want warn", l.min)
	}
}

func TestNormalizeNameGateIsOff(t *testing.T) {
	if err := setADOTGateDefaults(); err != nil {
		t.Fatalf("gate not registered: %v", err)
	}
	found := false
	featuregate.GlobalRegistry().VisitAll(func(g *featuregate.Gate) {
		if g.ID() == "pkg.translator.prometheus.NormalizeName" {
			found = true
			if g.IsEnabled() {
				t.Error("pkg.translator.prometheus.NormalizeName is on; ADOT ships it off")
			}
		}
	})
	if !found {
		t.Error("pkg.translator.prometheus.NormalizeName is not registered")
	}
}
