package uplink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/shared/version"
	"github.com/purehealth/purehealth/shared/wire"
)

const (
	maxAnswerBytes = 64 << 10 // an ack or error body is a few dozen bytes
	ingestPath     = "/v1/ingest"
)

// client posts encoded batches to the cloud's ingest endpoint. It is used by the Run
// goroutine only, but counts the bytes on its connections atomically so Status can read
// them.
type client struct {
	url  string
	http *http.Client
	tr   *http.Transport
	wire atomic.Int64 // bytes written and read on every connection, TLS and headers included
}

func newClient(o *Options) (*client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("uplink.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("uplink.ca_file: no PEM certificates in %s", o.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("uplink.cert_file/key_file: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	c := &client{url: strings.TrimSuffix(o.URL, "/") + ingestPath}
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	c.tr = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: conn, n: &c.wire}, nil
		},
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: o.ConnectTimeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        2,
		IdleConnTimeout:     90 * time.Second,
		// The body is already gzip; a transparent decompression of answers is not wanted.
		DisableCompression: true,
	}
	c.http = &http.Client{Transport: c.tr}
	return c, nil
}

// countingConn adds every byte it moves to n: the byte budget counts what the metered
// link carries, not what the JSON weighs.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// answer is what the cloud said to one POST.
type answer struct {
	status     int
	ack        wire.Ack   // 2xx, decoded (ackErr says whether it made sense)
	ackErr     error      //
	refusal    wire.Error // non-2xx body, as far as it could be read
	retryAfter time.Duration
}

// post sends one encoded batch. An error means no answer came (the connection failed, the
// request timed out): the batch may or may not have been stored.
func (c *client) post(ctx context.Context, body []byte, token string, timeout time.Duration, now time.Time) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	if token != "" { // none: the client certificate alone says who the station is
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", "ph-agent/"+version.Version)
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return answer{}, fmt.Errorf("read answer (HTTP %d): %w", resp.StatusCode, err)
	}
	a := answer{status: resp.StatusCode, retryAfter: backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), now)}
	if resp.StatusCode/100 == 2 {
		if len(raw) > maxAnswerBytes {
			a.ackErr = fmt.Errorf("answer longer than %d bytes", maxAnswerBytes)
		} else {
			a.ack, a.ackErr = decodeAck(raw)
		}
		return a, nil
	}
	a.refusal = decodeRefusal(raw, resp.StatusCode)
	return a, nil
}

// decodeAck parses a 2xx body. It is strict about what it relies on (an object with a
// non-negative integer acked_seq, the acked map if present holding integers, acked_seq
// repeating acked.readings) and lenient about the rest (unknown keys are a newer cloud's
// business). Anything else is an error: a garbage answer never moves a cursor.
func decodeAck(raw []byte) (wire.Ack, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return wire.Ack{}, errors.New("answer is not a JSON object")
	}
	var v struct {
		AckedSeq *uint64           `json:"acked_seq"`
		Acked    map[string]uint64 `json:"acked"`
		Acks     []wire.AlertAck   `json:"acks"`
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&v); err != nil {
		return wire.Ack{}, fmt.Errorf("answer: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return wire.Ack{}, errors.New("answer: data after the JSON object")
	}
	if v.AckedSeq == nil {
		return wire.Ack{}, errors.New("answer has no acked_seq")
	}
	if r, ok := v.Acked["readings"]; ok && r != *v.AckedSeq {
		return wire.Ack{}, fmt.Errorf("answer: acked_seq %d differs from acked.readings %d", *v.AckedSeq, r)
	}
	// Acknowledgements made in the cloud: a bad one is left out (the answer still
	// acknowledges the batch), and more than wire.MaxAcks wait for the next answer.
	var acks []wire.AlertAck
	for _, a := range v.Acks[:min(len(v.Acks), wire.MaxAcks)] {
		if a.Check() == nil {
			acks = append(acks, a)
		}
	}
	return wire.Ack{AckedSeq: *v.AckedSeq, Acked: v.Acked, Acks: acks}, nil
}

// confirm checks that ack acknowledges exactly the highest seq sent of each stream (sent
// is indexed by stream; 0 means the batch held none of it). A cloud that only answers
// acked_seq is understood for batches of readings alone.
func confirm(ack wire.Ack, sent [numStreams + 1]uint64) error {
	for _, st := range streams {
		want := sent[st]
		if want == 0 {
			continue
		}
		got, ok := ack.Acked[st.String()]
		if st == readingsStream && !ok {
			got, ok = ack.AckedSeq, true
		}
		switch {
		case !ok:
			return fmt.Errorf("answer does not acknowledge the %s sent (up to seq %d)", st, want)
		case got != want:
			return fmt.Errorf("answer acknowledges %s up to seq %d, the batch held up to %d", st, got, want)
		}
	}
	return nil
}

// decodeRefusal reads a wire.Error body, or keeps the start of whatever came instead.
func decodeRefusal(raw []byte, status int) wire.Error {
	var e wire.Error
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		e.Error, e.Field = clip(e.Error, 300), clip(e.Field, 200)
		return e
	}
	msg := strings.TrimSpace(string(raw))
	if msg == "" || !isPrintable(msg) {
		msg = http.StatusText(status)
	}
	return wire.Error{Error: clip(msg, 300)}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' || (r < ' ' && r != '\n' && r != '\t') {
			return false
		}
	}
	return true
}
