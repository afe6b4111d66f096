// configsource.go: where the collector's config comes from, and which variable said so.
package main

import (
	"fmt"
	"os"
	"strings"
)

const (
	configURIEnv      = "OPENTELEMETRY_COLLECTOR_CONFIG_URI"
	configFileEnv     = "OPENTELEMETRY_COLLECTOR_CONFIG_FILE" // ADOT 1.20.0-era name, still honoured
	defaultConfigPath = "/opt/collector-config/config.yaml"
)

type configSource struct {
	uri      string
	variable string // the variable that named uri; "" for the default
}

// configSourceFromEnv: OPENTELEMETRY_COLLECTOR_CONFIG_URI, else
// OPENTELEMETRY_COLLECTOR_CONFIG_FILE, else the layer's file. Empty counts as unset.
func configSourceFromEnv() configSource {
	uri := strings.TrimSpace(os.Getenv(configURIEnv))
	file := strings.TrimSpace(os.Getenv(configFileEnv))
	switch {
	case uri != "":
		if file != "" && file != uri {
			logger.Warnf("both %s and %s are set; using %s=%s", configURIEnv, configFileEnv, configURIEnv, uri)
		}
		return configSource{uri: uri, variable: configURIEnv}
	case file != "":
		return configSource{uri: file, variable: configFileEnv}
	}
	return configSource{uri: defaultConfigPath}
}

func (s configSource) String() string {
	if s.variable == "" {
		return fmt.Sprintf("%s (%s and %s are unset)", s.uri, configURIEnv, configFileEnv)
	}
	return s.variable + "=" + s.uri
}
