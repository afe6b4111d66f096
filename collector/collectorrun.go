// collectorrun.go: starting the collector in-process, and stopping it within a deadline.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/otelcol"
)

type runningCollector struct {
	col  *otelcol.Collector
	done chan error // receives Run's result once
}

// startCollector returns once the receivers listen: the Init phase ends at the first
// event/next, and the SDK may send right after.
func startCollector(set otelcol.CollectorSettings) (*runningCollector, error) {
	col, err := otelcol.NewCollector(set)
	if err != nil {
		return nil, err
	}
	rc := &runningCollector{col: col, done: make(chan error, 1)}
	go func() { rc.done <- col.Run(context.Background()) }()
	for col.GetState() != otelcol.StateRunning {
		select {
		case err := <-rc.done:
			if err == nil {
				err = errors.New("collector stopped while starting")
			}
			return nil, err
		case <-time.After(5 * time.Millisecond):
		}
	}
	return rc, nil
}

// stop shuts the collector down (pipelines flush, exporters close) and waits for it
// until deadline at most.
func (rc *runningCollector) stop(deadline time.Time) error {
	rc.col.Shutdown()
	select {
	case err := <-rc.done:
		return err
	case <-time.After(time.Until(deadline)):
		return errors.New("collector did not shut down before the SHUTDOWN deadline")
	}
}

// initFailure names what failed to start, and the config and variable it came from.
func initFailure(err error, src configSource) (errType string, reason error) {
	msg := err.Error()
	if strings.HasPrefix(msg, "failed to get config") || strings.HasPrefix(msg, "invalid configuration") {
		return "Extension.ConfigInvalid", fmt.Errorf("cannot load the collector config from %s: %w", src, err)
	}
	return "Extension.CollectorStart", fmt.Errorf("the collector did not start (config from %s): %w", src, err)
}
