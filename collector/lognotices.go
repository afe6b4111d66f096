// lognotices.go: drops the collector's cold-start notices that mean nothing in this layer.
package main

import (
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Each of these would be logged at every cold start of every function:
//   - ADOT collector 0.35.0 configs name the `logging` exporter (and its `loglevel`
//     key); upstream warns they will be removed, but in this pinned layer they stay;
//   - the note that server endpoints now default to localhost: the layer's config and
//     ADOT's name their endpoints, and nothing here can act on it.
var coldStartNotices = []string{
	"The logging exporter is DEPRECATED",
	"'loglevel' option is deprecated",
	"The default endpoints for all servers in components have changed to use localhost",
}

// quietLogging is the collector's logging option that applies the filter.
func quietLogging() zap.Option {
	return zap.WrapCore(func(c zapcore.Core) zapcore.Core { return noticeFilter{c} })
}

// noticeFilter drops the entries above and passes every other one, data included.
type noticeFilter struct{ zapcore.Core }

func (n noticeFilter) With(fields []zapcore.Field) zapcore.Core {
	return noticeFilter{n.Core.With(fields)}
}

func (n noticeFilter) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	for _, notice := range coldStartNotices {
		if strings.HasPrefix(e.Message, notice) {
			return ce
		}
	}
	return n.Core.Check(e, ce)
}
