// docs_config_test.go: the logs configuration docs/layer.md gives loads in this collector.
package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
)

// docsBlock returns the fenced YAML block that follows marker in docs/layer.md.
func docsBlock(t *testing.T, marker string) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/layer.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, found := strings.Cut(string(doc), marker)
	if !found {
		t.Fatalf("docs/layer.md has no %q", marker)
	}
	_, block, found := strings.Cut(after, "```yaml\n")
	block, _, closed := strings.Cut(block, "```")
	if !found || !closed {
		t.Fatalf("no fenced yaml block after %q in docs/layer.md", marker)
	}
	return block
}

func TestDocsLogsConfigLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(path, []byte(docsBlock(t, "<!-- telemetryapi-logs-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTLP_TOKEN", "t0ken")
	useConfig(t, configURIEnv, path)
	cfg := loadConfig(t)
	logs, ok := cfg.Service.Pipelines[component.MustNewID("logs")]
	if !ok || !slices.Equal(ids(logs.Receivers), []string{"telemetryapi", "otlp"}) {
		t.Fatalf("logs pipeline %+v; want receivers telemetryapi and otlp", logs)
	}
	if got := cfg.Receivers[component.MustNewID("telemetryapi")].(*telemetryAPIConfig).Types; !slices.Equal(got, []string{"platform", "function"}) {
		t.Errorf("telemetryapi types %v", got)
	}
	checkLambdaShape(t, cfg)
}
