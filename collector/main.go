// Command collector is the reduced OpenTelemetry Collector that the layer
// ships as extensions/collector.
//
// With no arguments (how Lambda starts an external extension) it runs as a
// Lambda extension: see extension.go. With arguments it is the plain
// otelcol command line (`components`, `validate --config F`, `--config F`),
// for use outside Lambda.
package main

import (
	"os"
	"runtime/debug"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/httpprovider"
	"go.opentelemetry.io/collector/confmap/provider/httpsprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

const defaultConfigURI = "/opt/collector-config/config.yaml"

// configURI is where the config comes from, as in ADOT's layer:
// OPENTELEMETRY_COLLECTOR_CONFIG_URI, then the older
// OPENTELEMETRY_COLLECTOR_CONFIG_FILE, then the file in the layer.
func configURI() string {
	for _, k := range []string{"OPENTELEMETRY_COLLECTOR_CONFIG_URI", "OPENTELEMETRY_COLLECTOR_CONFIG_FILE"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return defaultConfigURI
}

// version reports the otelcol module version this binary was built with.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "go.opentelemetry.io/collector/otelcol" {
				return m.Version
			}
		}
	}
	return "unknown"
}

func settings() otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "collector",
			Description: "Reduced OpenTelemetry Collector for the ADOT Python Lambda layer",
			Version:     version(),
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs: []string{configURI()},
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
					yamlprovider.NewFactory(),
					httpprovider.NewFactory(),
					httpsprovider.NewFactory(),
				},
				DefaultScheme: "env",
			},
		},
	}
}

func main() {
	if len(os.Args) > 1 {
		if err := otelcol.NewCommand(settings()).Execute(); err != nil {
			os.Exit(1)
		}
		return
	}
	os.Exit(runExtension(settings()))
}
