// settings.go: how the collector is assembled: components, config providers, converter, version.
package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/open-telemetry/opentelemetry-collector-contrib/confmap/provider/s3provider"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/httpprovider"
	"go.opentelemetry.io/collector/confmap/provider/httpsprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
	"go.uber.org/zap"
)

const (
	otelcolModule = "go.opentelemetry.io/collector/otelcol"
	contribModule = "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/awsxrayexporter"
)

func collectorSettings(buf *exportBuffer, hub *telemetryHub, src configSource) otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "collector",
			Description: "Reduced OpenTelemetry Collector of the ADOT Python Lambda layer",
			Version:     moduleVersion(otelcolModule),
		},
		Factories:      func() (otelcol.Factories, error) { return components(buf, hub) },
		LoggingOptions: []zap.Option{quietLogging()},
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs: []string{src.uri},
				ProviderFactories: expandingProviders(
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
					yamlprovider.NewFactory(),
					httpprovider.NewFactory(),
					httpsprovider.NewFactory(),
					s3provider.NewFactory(),
				),
				ConverterFactories: []confmap.ConverterFactory{newLambdaConverterFactory()},
				// ${VAR} means ${env:VAR}, as in ADOT's configs.
				DefaultScheme: "env",
			},
		},
	}
}

// moduleVersion is the version of a module linked into this binary.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == path {
				return m.Version
			}
		}
	}
	return "unknown"
}

// versionLine is what `collector --version` prints.
func versionLine() string {
	return fmt.Sprintf("collector %s: the reduced OpenTelemetry Collector of the ADOT Python Lambda layer "+
		"(collector core %s, contrib %s, %s)",
		moduleVersion(otelcolModule), moduleVersion(otelcolModule), moduleVersion(contribModule), runtime.Version())
}
