// telemetrylistener.go: the HTTP endpoint the Telemetry API POSTs platform events to.
package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// telemetryEvent is one item of the JSON array Lambda POSTs (schema 2022-12-13).
type telemetryEvent struct {
	Time   string          `json:"time"`
	Type   string          `json:"type"`
	Record json.RawMessage `json:"record"`
}

// maxEventsBody is above the subscription's 256 KiB buffer, with room for framing and
// for a 256 KiB line whose every byte JSON escapes to six (\u0000).
const maxEventsBody = 8 << 20

type telemetryListener struct {
	srv *http.Server
	uri string // what the subscription names as destination
}

// listenTelemetry binds host:port (port 0: any free port) and serves events into ev.
// The destination URI keeps host as given: on Lambda the sandbox name, not an address.
func listenTelemetry(host, port string, ev *invokeEvents, hub *telemetryHub) (*telemetryListener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	bound := ln.Addr().(*net.TCPAddr).Port
	l := &telemetryListener{
		srv: &http.Server{
			Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveEvents(w, r, ev, hub) }),
			ReadHeaderTimeout: 5 * time.Second,
		},
		uri: "http://" + net.JoinHostPort(host, strconv.Itoa(bound)),
	}
	go l.srv.Serve(ln)
	return l, nil
}

// serveEvents hands the batch to the telemetryapi receivers, then records the request
// ids of platform events: a runtimeDone is noted only once the log lines before it in
// the stream are held. It never logs: a line per delivery would be noise in every
// invocation's log, and with "extension" logs subscribed it would come back as a record.
func serveEvents(w http.ResponseWriter, r *http.Request, ev *invokeEvents, hub *telemetryHub) {
	var batch []telemetryEvent
	if err := json.NewDecoder(io.LimitReader(r.Body, maxEventsBody)).Decode(&batch); err != nil {
		http.Error(w, "expected a JSON array of events", http.StatusBadRequest)
		return
	}
	hub.deliver(context.Background(), batch)
	for _, e := range batch {
		var rec struct {
			RequestID string `json:"requestId"`
		}
		if json.Unmarshal(e.Record, &rec) == nil {
			ev.note(e.Type, rec.RequestID)
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (l *telemetryListener) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	l.srv.Shutdown(ctx)
}
