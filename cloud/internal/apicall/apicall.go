// Package apicall makes requests to services outside our network — the data.gov.in gateway,
// India-WRIS and IMD endpoints, the Copernicus Data Space APIs — the way a polite and robust
// client does: a request rate per service, one timeout per attempt, retries with jittered
// backoff that honour the service's Retry-After, bodies read only up to a limit, and errors
// that say what the service answered without ever showing a secret.
//
// A Client is safe for concurrent use; the rate limit is shared by all its callers. It
// starts no goroutines.
package apicall

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/time/rate"

	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/shared/version"
)

// What went wrong, for errors.Is. Every error of Do wraps one of them or the context's.
var (
	// ErrUnauthorized: the service refused our credentials (401, 403).
	ErrUnauthorized = errors.New("credentials refused")
	// ErrNotFound: the resource does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrRejected: the service refused the request as made (another 4xx).
	ErrRejected = errors.New("request rejected")
	// ErrRateLimited: still 429 Too Many Requests at the last attempt.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable: a 5xx answer, a timeout or a broken connection at the last attempt.
	ErrUnavailable = errors.New("service unavailable")
	// ErrMalformed: the body was refused by the caller's decoder at the last attempt.
	ErrMalformed = errors.New("malformed response")
	// ErrTooLarge: the body is longer than Options.MaxBody; not retried.
	ErrTooLarge = errors.New("response too large")
)

// Defaults of Options.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultAttempts    = 4
	DefaultBackoffBase = 2 * time.Second
	DefaultBackoffMax  = 2 * time.Minute
	DefaultRate        = 1.0 // requests a second
	DefaultMaxBody     = 16 << 20
)

// Options tune a Client. Zero fields take the defaults above.
type Options struct {
	// Timeout bounds one attempt, from sending the request to the body's last byte.
	Timeout time.Duration
	// Attempts is how many times a request is tried in all (1 = no retry).
	Attempts int
	// BackoffBase and BackoffMax bound the waits between attempts (full jitter, doubling).
	// A Retry-After from the service lengthens a wait, up to backoff.MaxRetryAfter.
	BackoffBase, BackoffMax time.Duration
	// Rate is the sustained number of requests a second this client sends, retries
	// included; Burst how many may go at once (default 1). Negative Rate: no limit.
	Rate  float64
	Burst int
	// MaxBody is the largest response body read, in bytes.
	MaxBody int64
	// RetryAfterMillis says the service's Retry-After counts milliseconds (the Copernicus
	// Data Space APIs do) rather than seconds as HTTP defines it.
	RetryAfterMillis bool
	// Secrets are query parameters (such as "api-key") whose values never appear in an
	// error or a log line.
	Secrets []string
	// HTTPClient sends the requests; default a client with no overall timeout (Timeout
	// bounds each attempt) and the default transport.
	HTTPClient *http.Client
	// UserAgent names us to the service; default "ph-cloud/<version>".
	UserAgent string
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Burst <= 0 {
		o.Burst = 1
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.UserAgent == "" {
		o.UserAgent = "ph-cloud/" + version.Version
	}
	return o
}

// Client sends requests to one service. Build it with New.
type Client struct {
	opts    Options
	log     *slog.Logger
	limiter *rate.Limiter

	requests, retries, limited atomic.Int64
}

// New returns a client. log may be nil.
func New(o Options, log *slog.Logger) *Client {
	o = o.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim := rate.NewLimiter(rate.Inf, 0)
	if o.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(o.Rate), o.Burst)
	}
	return &Client{opts: o, log: log, limiter: lim}
}

// Stats counts a client's traffic since it was built.
type Stats struct {
	Requests    int64 // attempts sent
	Retries     int64 // attempts after a failed one
	RateLimited int64 // 429 answers
}

// Stats returns the counters. Safe for concurrent use.
func (c *Client) Stats() Stats {
	return Stats{Requests: c.requests.Load(), Retries: c.retries.Load(), RateLimited: c.limited.Load()}
}

// Request builds one attempt's request with the attempt's context. It is called again for
// each retry, so that a body is sent whole every time.
type Request func(ctx context.Context) (*http.Request, error)

// Do sends the request until the service answers 2xx with a body that accept takes, and
// returns nil then. 429, 408, 5xx answers, timeouts, broken connections and bodies that
// accept refuses are retried up to Options.Attempts in all; other answers end at once
// with a *StatusError. accept may be nil (any body is fine); it must not keep body.
func (c *Client) Do(ctx context.Context, build Request, accept func(body []byte) error) error {
	b := backoff.New(c.opts.BackoffBase, c.opts.BackoffMax, backoff.Full)
	var last error
	for attempt := 1; ; attempt++ {
		if err := c.limiter.Wait(ctx); err != nil {
			return c.stopped(ctx, err, last)
		}
		hint, err := c.attempt(ctx, build, accept)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return c.stopped(ctx, ctx.Err(), last)
		}
		var fail *retryable
		if !errors.As(err, &fail) {
			return err
		}
		last = fail.err
		if attempt >= c.opts.Attempts {
			return fmt.Errorf("%w (after %d attempts)", last, attempt)
		}
		wait := b.NextAfter(hint)
		c.retries.Add(1)
		c.log.Debug("retrying", "attempt", attempt, "wait", wait, "err", last)
		if err := backoff.Sleep(ctx, wait); err != nil {
			return c.stopped(ctx, err, last)
		}
	}
}

// stopped is the error when ctx ends while retrying: the context's, with the last failure
// for the log.
func (c *Client) stopped(ctx context.Context, err, last error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	if last != nil {
		return fmt.Errorf("%w (last failure: %v)", err, last)
	}
	return err
}

// retryable marks a failure worth another attempt.
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }

// attempt sends the request once. It returns a *retryable for failures worth retrying,
// with the service's Retry-After hint (0 if none).
func (c *Client) attempt(ctx context.Context, build Request, accept func([]byte) error) (time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := build(actx)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
	where := req.Method + " " + c.redact(req.URL)
	c.requests.Add(1)
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, &retryable{fmt.Errorf("%s: %w: %v", where, ErrUnavailable, c.redactErr(err))}
	}
	defer resp.Body.Close()
	if resp.ContentLength > c.opts.MaxBody {
		return 0, fmt.Errorf("%s: %w: %d bytes announced, at most %d read", where, ErrTooLarge,
			resp.ContentLength, c.opts.MaxBody)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, &retryable{fmt.Errorf("%s: %w: reading the body: %v", where, ErrUnavailable, c.redactErr(err))}
	}
	if int64(len(body)) > c.opts.MaxBody {
		return 0, fmt.Errorf("%s: %w: more than %d bytes", where, ErrTooLarge, c.opts.MaxBody)
	}
	status := resp.StatusCode
	if status >= 200 && status < 300 {
		if accept == nil {
			return 0, nil
		}
		if err := accept(body); err != nil {
			return 0, &retryable{fmt.Errorf("%s: %w: %w", where, ErrMalformed, err)}
		}
		return 0, nil
	}
	serr := &StatusError{Where: where, Status: status, Message: Message(body)}
	switch {
	case status == http.StatusTooManyRequests:
		c.limited.Add(1)
		serr.kind = ErrRateLimited
		return c.retryAfter(resp.Header), &retryable{serr}
	case status == http.StatusRequestTimeout || status >= 500:
		serr.kind = ErrUnavailable
		return c.retryAfter(resp.Header), &retryable{serr}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		serr.kind = ErrUnauthorized
	case status == http.StatusNotFound:
		serr.kind = ErrNotFound
	default:
		serr.kind = ErrRejected
	}
	return 0, serr
}

func (c *Client) retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if c.opts.RetryAfterMillis {
		return backoff.ParseRetryAfterMillis(v)
	}
	return backoff.ParseRetryAfter(v, time.Now())
}

// StatusError is an answer other than 2xx.
type StatusError struct {
	Where   string // method and URL, secrets redacted
	Status  int
	Message string // what the service said, from its error body; may be empty
	kind    error
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s: %d %s", e.Where, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + strconv.Quote(e.Message)
	}
	return s
}

// Unwrap returns the sentinel of the status's class (ErrUnauthorized, ...).
func (e *StatusError) Unwrap() error { return e.kind }

// MaxSecretBytes bounds a secret file: keys and client secrets are tens of bytes.
const MaxSecretBytes = 64 << 10

// ReadSecret returns a credential given inline (value) or in a file (its content without
// surrounding blanks), so that keys can stay out of configuration files. name says what
// the credential is in errors ("api_key"); giving both or neither is an error, as is an
// empty file, a file that is not a regular file (a device, a pipe: reading it could block
// or never end) and one larger than MaxSecretBytes.
func ReadSecret(name, value, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fmt.Errorf("%s and %s_file are exclusive", name, name)
	case file != "":
		b, err := readSecretFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", name, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s_file %s is empty", name, file)
		}
		return s, nil
	case value == "":
		return "", fmt.Errorf("%s or %s_file is required", name, name)
	}
	return value, nil
}

func readSecretFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if info.Size() > MaxSecretBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxSecretBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretBytes+1))
	if err == nil && len(b) > MaxSecretBytes {
		err = fmt.Errorf("%s is larger than %d bytes", path, MaxSecretBytes)
	}
	return b, err
}

// Redact returns u as text with the values of secret query parameters replaced.
func (c *Client) redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	q := u.Query()
	changed := false
	for _, s := range c.opts.Secrets {
		if q.Has(s) {
			q.Set(s, "REDACTED")
			changed = true
		}
	}
	if !changed {
		return u.String()
	}
	cp := *u
	cp.RawQuery = q.Encode()
	return cp.String()
}

// redactErr drops the URL a transport error carries (it would show the secrets); the
// caller names the request itself.
func (c *Client) redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// maxMessage bounds the text of a service's error kept in an error.
const maxMessage = 300

// Message extracts what a service said in an error body: the JSON shapes of the
// data.gov.in gateway ({"error": "Key not authorised"}), of OAuth2 servers ({"error":
// "invalid_client", "error_description": "..."}) and of Sentinel Hub ({"error": {"status",
// "reason", "message", "code"}}), a {"message": "..."} object, the title of an HTML error
// page, or else the start of the text. Control characters are dropped and the result is
// at most a few hundred bytes, so that it prints safely on one line.
func Message(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return ""
	}
	if body[0] == '{' {
		var v struct {
			Error       json.RawMessage `json:"error"`
			Description string          `json:"error_description"`
			Message     string          `json:"message"`
		}
		if json.Unmarshal(body, &v) == nil {
			var s string
			var obj struct{ Message, Reason, Code string }
			switch {
			case json.Unmarshal(v.Error, &s) == nil && s != "":
				if v.Description != "" {
					s += ": " + v.Description
				}
			case json.Unmarshal(v.Error, &obj) == nil && (obj.Message != "" || obj.Reason != ""):
				s = obj.Message
				if s == "" {
					s = obj.Reason
				}
				if obj.Code != "" {
					s = obj.Code + ": " + s
				}
			default:
				s = v.Message
			}
			if s != "" {
				return clean(s)
			}
		}
	}
	if i := bytes.Index(bytes.ToLower(body), []byte("<title>")); i >= 0 {
		rest := body[i+len("<title>"):]
		if j := bytes.Index(bytes.ToLower(rest), []byte("</title>")); j >= 0 {
			return clean(string(rest[:j]))
		}
	}
	if len(body) > 4*maxMessage {
		body = body[:4*maxMessage]
	}
	return clean(string(body))
}

func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r) || r == unicode.ReplacementChar:
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
