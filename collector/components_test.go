// components_test.go: the component set is ADOT's reduced one plus ours.
package main

import (
	"slices"
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
	f, err := components(newExportBuffer(), newTelemetryHub())
	if err != nil {
		t.Fatal(err)
	}
	check := func(kind string, got, want []string) {
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", kind, got, want)
		}
	}
	check("receivers", names(f.Receivers), []string{"otlp", "telemetryapi"})
	check("processors", names(f.Processors), []string{"lambdabuffer"})
	check("exporters", names(f.Exporters), []string{"awsemf", "awsxray", "debug", "logging", "otlp", "otlphttp", "prometheusremotewrite"})
	check("extensions", names(f.Extensions), []string{"sigv4auth"})
	check("connectors", names(f.Connectors), nil)
}
