// envconfig.go: the extension's settings that come from environment variables.
package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	drainTimeoutEnv = "OPENTELEMETRY_EXTENSION_DRAIN_TIMEOUT"
	listenerHostEnv = "OPENTELEMETRY_EXTENSION_TELEMETRY_LISTENER_HOST"
	listenerPortEnv = "OPENTELEMETRY_EXTENSION_TELEMETRY_LISTENER_PORT"
	initTypeEnv     = "AWS_LAMBDA_INITIALIZATION_TYPE"
)

// defaultDrainTimeout bounds the export after each invocation. One second covers a
// fresh TCP + TLS 1.3 connection and one request to a backend 300 ms away (3 round
// trips), and it caps what a dead backend adds to every invocation's duration; what
// is not sent by then waits for the next invocation or SHUTDOWN.
const defaultDrainTimeout = time.Second

// The Telemetry API's destination: Lambda reaches the sandbox by this name. Port 0
// lets the kernel pick a free port, which the subscription then names.
const (
	defaultListenerHost = "sandbox.localdomain"
	defaultListenerPort = "0"
)

type extensionSettings struct {
	drainTimeout     time.Duration
	listenerHost     string
	listenerPort     string
	managedInstances bool // Lambda Managed Instances: no INVOKE events, no freeze
}

func settingsFromEnv() extensionSettings {
	s := extensionSettings{
		drainTimeout:     parseDrainTimeout(os.Getenv(drainTimeoutEnv)),
		listenerHost:     envOr(listenerHostEnv, defaultListenerHost),
		listenerPort:     envOr(listenerPortEnv, defaultListenerPort),
		managedInstances: os.Getenv(initTypeEnv) == "lambda-managed-instances",
	}
	return s
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// parseDrainTimeout takes milliseconds ("1500") or a Go duration ("1.5s", "800ms"),
// and says once when the value is not one.
func parseDrainTimeout(v string) time.Duration {
	d, ok := drainTimeoutValue(v)
	if !ok {
		logger.Warnf("%s=%q is not a positive duration (milliseconds, or e.g. 1500ms, 2s); using %v",
			drainTimeoutEnv, v, defaultDrainTimeout)
	}
	return d
}

// drainTimeoutValue is the timeout v names, or the default and false if v names none.
func drainTimeoutValue(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return defaultDrainTimeout, true
	}
	d, err := time.ParseDuration(v)
	if ms, merr := strconv.Atoi(v); merr == nil {
		d, err = time.Duration(ms)*time.Millisecond, nil
	}
	if err != nil || d <= 0 {
		return defaultDrainTimeout, false
	}
	return d, true
}
