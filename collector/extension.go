package main

// The Lambda external-extension lifecycle (Extensions API 2020-01-01):
// register under the executable's file name, start the collector, then
// block on event/next until SHUTDOWN, when the collector is shut down
// (pipelines drain, exporters flush) and the process exits.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/otelcol"
)

// logger is ours alone, so other packages' log output keeps its own format.
var logger = log.New(os.Stderr, "[collector] ", 0)

type extensionClient struct {
	base string
	id   string
}

type extensionEvent struct {
	EventType      string `json:"eventType"`
	RequestID      string `json:"requestId"`
	ShutdownReason string `json:"shutdownReason"`
}

func (c *extensionClient) do(ctx context.Context, method, path, body string, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if c.id != "" {
		req.Header.Set("Lambda-Extension-Identifier", c.id)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// No timeout: event/next blocks until the next event.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 { // register and next: 200; init/exit error: 202
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

func (c *extensionClient) register(ctx context.Context, name string) error {
	resp, err := c.do(ctx, http.MethodPost, "/register", `{"events":["INVOKE","SHUTDOWN"]}`,
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
	resp, err := c.do(ctx, http.MethodGet, "/event/next", "", nil)
	if err != nil {
		return ev, err
	}
	defer resp.Body.Close()
	return ev, json.NewDecoder(resp.Body).Decode(&ev)
}

// fail reports err on init/error or exit/error; Lambda then fails the phase.
func (c *extensionClient) fail(phase, errType string, err error) {
	logger.Printf("%s: %s: %v", phase, errType, err)
	body, _ := json.Marshal(map[string]string{"errorMessage": err.Error(), "errorType": errType})
	resp, rerr := c.do(context.Background(), http.MethodPost, "/"+phase+"/error", string(body),
		map[string]string{"Lambda-Extension-Function-Error-Type": errType})
	if rerr != nil {
		logger.Printf("reporting %s error: %v", phase, rerr)
		return
	}
	resp.Body.Close()
}

func runExtension(set otelcol.CollectorSettings) int {
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		logger.Print("AWS_LAMBDA_RUNTIME_API is not set, so this is not a Lambda extension environment; " +
			"outside Lambda run `collector --config FILE` or `collector components`")
		return 2
	}
	c := &extensionClient{base: "http://" + api + "/2020-01-01/extension"}
	ctx := context.Background()
	name := filepath.Base(os.Args[0])
	if err := c.register(ctx, name); err != nil {
		logger.Printf("cannot register extension %q: %v", name, err)
		return 1
	}
	logger.Printf("registered as %q, config %s", name, set.ConfigProviderSettings.ResolverSettings.URIs[0])

	// Lambda sends SHUTDOWN, not signals; treat SIGTERM/SIGINT the same way.
	set.DisableGracefulShutdown = true
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	col, err := otelcol.NewCollector(set)
	if err != nil {
		c.fail("init", "Extension.CollectorCreate", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()

	// The Init phase ends when every extension calls event/next, so the
	// receivers must be listening before that.
	for col.GetState() != otelcol.StateRunning {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("collector stopped while starting")
			}
			c.fail("init", "Extension.CollectorStart", err)
			return 1
		case <-time.After(5 * time.Millisecond):
		}
	}

	events := make(chan extensionEvent)
	nextErr := make(chan error, 1)
	go func() {
		for {
			ev, err := c.next(ctx)
			if err != nil {
				nextErr <- err
				return
			}
			events <- ev
			if ev.EventType == "SHUTDOWN" {
				return
			}
		}
	}()

	stop := func() int {
		col.Shutdown()
		if err := <-done; err != nil {
			logger.Printf("collector shutdown: %v", err)
			return 1
		}
		return 0
	}
	for {
		select {
		case ev := <-events:
			if ev.EventType == "SHUTDOWN" {
				logger.Printf("SHUTDOWN (%s): flushing", ev.ShutdownReason)
				return stop()
			}
		case s := <-sigs:
			logger.Printf("signal %v: flushing", s)
			return stop()
		case err := <-nextErr:
			rc := stop()
			c.fail("exit", "Extension.NextEvent", err)
			return max(rc, 1)
		case err := <-done:
			if err == nil {
				err = errors.New("collector exited before SHUTDOWN")
			}
			c.fail("exit", "Extension.CollectorExited", err)
			return 1
		}
	}
}
