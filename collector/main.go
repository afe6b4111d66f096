// Command collector is the reduced OpenTelemetry Collector that the layer ships as
// extensions/collector.
//
// With no arguments (how Lambda starts an external extension) it runs as a Lambda
// extension: see extension.go. With arguments it is the plain otelcol command line
// (`components`, `validate --config F`, `--config F`, `--version`), for use outside
// Lambda; there the lambdabuffer processor passes every batch straight through.
package main

import (
	"os"

	"go.opentelemetry.io/collector/otelcol"
)

func main() {
	if err := setADOTGateDefaults(); err != nil {
		logger.Errorf("feature gates: %v", err)
		os.Exit(1)
	}
	buf, hub := newExportBuffer(), newTelemetryHub()
	src := configSourceFromEnv()
	set := collectorSettings(buf, hub, src)
	if len(os.Args) > 1 {
		cmd := otelcol.NewCommand(set)
		cmd.SetVersionTemplate(versionLine() + "\n")
		if err := cmd.Execute(); err != nil {
			os.Exit(1)
		}
		return
	}
	os.Exit(runExtension(set, buf, hub, src))
}
