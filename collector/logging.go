// logging.go: the extension's own log lines, filtered by OPENTELEMETRY_EXTENSION_LOG_LEVEL.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// logLevelEnv sets the level of both the extension's lines and the collector's own logs.
const logLevelEnv = "OPENTELEMETRY_EXTENSION_LOG_LEVEL"

type level int

const (
	levelDebug level = iota
	levelInfo
	levelWarn
	levelError
)

// parseLevel accepts the level names the collector's logger knows; "" means info.
func parseLevel(s string) (level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return levelDebug, true
	case "", "info":
		return levelInfo, true
	case "warn", "warning":
		return levelWarn, true
	case "error", "dpanic", "panic", "fatal":
		return levelError, true
	}
	return levelInfo, false
}

// extLogger writes "[collector] LEVEL message" lines, the same shape on every path.
type extLogger struct {
	mu  sync.Mutex
	out io.Writer
	min level
}

var logger = newLogger(os.Stderr, os.Getenv(logLevelEnv))

func newLogger(out io.Writer, levelName string) *extLogger {
	l := &extLogger{out: out}
	min, ok := parseLevel(levelName)
	l.min = min
	if !ok {
		l.Warnf("%s=%q is not a log level (debug, info, warn, error); using info", logLevelEnv, levelName)
	}
	return l
}

func (l *extLogger) logf(lv level, tag, format string, args ...any) {
	if lv < l.min {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.out, "[collector] %s %s\n", tag, fmt.Sprintf(format, args...))
}

func (l *extLogger) Debugf(format string, args ...any) { l.logf(levelDebug, "DEBUG", format, args...) }
func (l *extLogger) Infof(format string, args ...any)  { l.logf(levelInfo, "INFO", format, args...) }
func (l *extLogger) Warnf(format string, args ...any)  { l.logf(levelWarn, "WARN", format, args...) }
func (l *extLogger) Errorf(format string, args ...any) { l.logf(levelError, "ERROR", format, args...) }
