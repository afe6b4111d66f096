// featuregates.go: the feature-gate defaults of ADOT's Lambda collector.
package main

import "go.opentelemetry.io/collector/featuregate"

// adotGateDefaults: ADOT ships NormalizeName off, so prometheusremotewrite keeps
// metric names as the SDK wrote them (no unit or _total suffixes added).
var adotGateDefaults = map[string]bool{
	"pkg.translator.prometheus.NormalizeName": false,
}

// setADOTGateDefaults applies them; a --feature-gates flag given later still wins.
func setADOTGateDefaults() error {
	for id, on := range adotGateDefaults {
		if err := featuregate.GlobalRegistry().Set(id, on); err != nil {
			return err
		}
	}
	return nil
}
