// extensionapi.go: the client of Lambda's Extensions API (2020-01-01) and Telemetry API (2022-07-01).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

type extensionClient struct {
	api string // AWS_LAMBDA_RUNTIME_API: host:port
	id  string // Lambda-Extension-Identifier, from register
}

type extensionEvent struct {
	EventType      string `json:"eventType"`
	RequestID      string `json:"requestId"`
	DeadlineMs     int64  `json:"deadlineMs"`
	ShutdownReason string `json:"shutdownReason"`
}

func (c *extensionClient) do(ctx context.Context, method, path string, body []byte, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.api+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if c.id != "" {
		req.Header.Set("Lambda-Extension-Identifier", c.id)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// No client timeout: event/next blocks until the next event.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 { // register, next, telemetry: 200; init/exit error: 202
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// register announces the extension under name (its file name) for the given events.
func (c *extensionClient) register(ctx context.Context, name string, events []string) error {
	body, _ := json.Marshal(map[string][]string{"events": events})
	resp, err := c.do(ctx, http.MethodPost, "/2020-01-01/extension/register", body,
		map[string]string{"Lambda-Extension-Name": name})
	if err != nil {
		return err
	}
	resp.Body.Close()
	c.id = resp.Header.Get("Lambda-Extension-Identifier")
	if c.id == "" {
		return errors.New("register: no Lambda-Extension-Identifier in the response")
	}
	return nil
}

func (c *extensionClient) next(ctx context.Context) (extensionEvent, error) {
	var ev extensionEvent
	resp, err := c.do(ctx, http.MethodGet, "/2020-01-01/extension/event/next", nil, nil)
	if err != nil {
		return ev, err
	}
	defer resp.Body.Close()
	return ev, json.NewDecoder(resp.Body).Decode(&ev)
}

// fail reports err on init/error or exit/error; Lambda then fails that phase.
func (c *extensionClient) fail(phase, errType string, err error) {
	logger.Errorf("%s error %s: %v", phase, errType, err)
	body, _ := json.Marshal(map[string]string{"errorMessage": err.Error(), "errorType": errType})
	resp, rerr := c.do(context.Background(), http.MethodPost, "/2020-01-01/extension/"+phase+"/error", body,
		map[string]string{"Lambda-Extension-Function-Error-Type": errType})
	if rerr != nil {
		logger.Errorf("reporting the %s error: %v", phase, rerr)
		return
	}
	resp.Body.Close()
}

// subscribeTelemetry asks for the given types (platform, function, extension), POSTed
// to uri. Buffering is Lambda's minimum (1000 events, 256 KiB, 25 ms), so runtimeDone
// arrives as soon as possible.
func (c *extensionClient) subscribeTelemetry(ctx context.Context, uri string, types []string) error {
	body, _ := json.Marshal(map[string]any{
		"schemaVersion": "2022-12-13",
		"types":         types,
		"buffering":     map[string]int{"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
		"destination":   map[string]string{"protocol": "HTTP", "URI": uri},
	})
	resp, err := c.do(ctx, http.MethodPut, "/2022-07-01/telemetry", body,
		map[string]string{"Content-Type": "application/json"})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if telemetryNotSupported(resp.StatusCode, answer) {
		return errTelemetryNotSupported
	}
	// Any other answer, a 202 without that error type included, is an ordinary refusal.
	return fmt.Errorf("PUT /2022-07-01/telemetry: %s: %s", resp.Status, strings.TrimSpace(string(answer)))
}

// errTelemetryNotSupported is AWS's Runtime Interface Emulator saying it has no
// Telemetry API: its stub answers every subscription with 202 and this error type.
var errTelemetryNotSupported = errors.New("PUT /2022-07-01/telemetry: 202 Accepted: " + notSupportedType)

const notSupportedType = "Telemetry.NotSupported"

// telemetryNotSupported matches the emulator's answer exactly: status 202 and a JSON
// error whose errorType is Telemetry.NotSupported. Nothing looser counts: the
// lifecycle takes this answer to mean a sandbox that never freezes (the emulator's
// Freeze does nothing), where held data may still be unsent at event/next.
func telemetryNotSupported(status int, body []byte) bool {
	if status != http.StatusAccepted {
		return false
	}
	var e struct {
		ErrorType string `json:"errorType"`
	}
	return json.Unmarshal(body, &e) == nil && e.ErrorType == notSupportedType
}
