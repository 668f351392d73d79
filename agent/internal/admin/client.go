package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
)

// ErrNotRunning means no agent answers on the socket.
var ErrNotRunning = errors.New("agent not running")

// Client talks to a running agent over its admin socket.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{path: path, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Status fetches the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var v Status
	return v, c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &v)
}

// Sensors fetches sensor health.
func (c *Client) Sensors(ctx context.Context) (Sensors, error) {
	var v Sensors
	return v, c.do(ctx, http.MethodGet, "/v1/sensors", nil, nil, &v)
}

// Readings fetches stored readings, newest first.
func (c *Client) Readings(ctx context.Context, q ReadingsQuery) (Readings, error) {
	vals := url.Values{}
	if q.Param != "" {
		vals.Set("param", q.Param)
	}
	if q.Since > 0 {
		vals.Set("since", q.Since.String())
	}
	if q.Limit > 0 {
		vals.Set("limit", strconv.Itoa(q.Limit))
	}
	var v Readings
	return v, c.do(ctx, http.MethodGet, "/v1/readings", vals, nil, &v)
}

// WQI fetches the current index message.
func (c *Client) WQI(ctx context.Context) (json.RawMessage, error) {
	var v json.RawMessage
	return v, c.do(ctx, http.MethodGet, "/v1/wqi", nil, nil, &v)
}

// Alerts fetches active alerts, or recent ones with all.
func (c *Client) Alerts(ctx context.Context, all bool, limit int) (Alerts, error) {
	vals := url.Values{}
	if all {
		vals.Set("all", "1")
	}
	if limit > 0 {
		vals.Set("limit", strconv.Itoa(limit))
	}
	var v Alerts
	return v, c.do(ctx, http.MethodGet, "/v1/alerts", vals, nil, &v)
}

// Ack acknowledges an alert.
func (c *Client) Ack(ctx context.Context, id uint64) (alerting.Alert, error) {
	var v alerting.Alert
	return v, c.do(ctx, http.MethodPost, "/v1/alerts/"+strconv.FormatUint(id, 10)+"/ack", nil, nil, &v)
}

// Queue fetches the uplink backlog.
func (c *Client) Queue(ctx context.Context) (Queue, error) {
	var v Queue
	return v, c.do(ctx, http.MethodGet, "/v1/queue", nil, nil, &v)
}

// Flush asks the agent to forward now and returns the queue afterwards.
func (c *Client) Flush(ctx context.Context) (Queue, error) {
	var v Queue
	return v, c.do(ctx, http.MethodPost, "/v1/flush", nil, nil, &v)
}

// Probes fetches every probe's status.
func (c *Client) Probes(ctx context.Context) (Probes, error) {
	var v Probes
	return v, c.do(ctx, http.MethodGet, "/v1/probes", nil, nil, &v)
}

// ProbeTest takes one reading now and returns the raw exchange.
func (c *Client) ProbeTest(ctx context.Context, name string) (json.RawMessage, error) {
	var v json.RawMessage
	return v, c.do(ctx, http.MethodPost, "/v1/probes/"+url.PathEscape(name)+"/test", nil, nil, &v)
}

// ProbeCalibrate sends a calibration point and returns the raw exchange.
func (c *Client) ProbeCalibrate(ctx context.Context, name, point string, value float64) (json.RawMessage, error) {
	body, err := json.Marshal(CalibrateRequest{Point: point, Value: value})
	if err != nil {
		return nil, err
	}
	var v json.RawMessage
	return v, c.do(ctx, http.MethodPost, "/v1/probes/"+url.PathEscape(name)+"/calibrate", nil, body, &v)
}

// AddSample stores a lab or field-kit result and returns it as stored.
func (c *Client) AddSample(ctx context.Context, req SampleRequest) (Reading, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Reading{}, err
	}
	var v Reading
	return v, c.do(ctx, http.MethodPost, "/v1/samples", nil, body, &v)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	u := "http://agent" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("%w: no socket at %s", ErrNotRunning, c.path)
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w: nothing listens on %s", ErrNotRunning, c.path)
		}
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("no permission to use %s: run as root or a member of the agent's group", c.path)
		}
		return fmt.Errorf("talk to agent at %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read agent reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(reply, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("agent replied %s", resp.Status)
	}
	if err := json.Unmarshal(reply, out); err != nil {
		return fmt.Errorf("decode agent reply: %w", err)
	}
	return nil
}
