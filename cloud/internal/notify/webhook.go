package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/shared/version"
)

// Webhook headers (contract for SignatureHeader).
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the exact body under the
	// channel's secret (Sign).
	SignatureHeader = "X-PH-Signature"
	// DeliveryHeader names the message: a retry of a message carries the same value, so a
	// receiver can drop a message it has already taken (e-mails carry it too).
	DeliveryHeader = "X-PH-Delivery"
)

// Sign returns the SignatureHeader value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// webhook POSTs messages as JSON. Any 2xx answer means delivered; redirects are not
// followed (a moved endpoint is a configuration to fix, not a place to send alerts to).
type webhook struct {
	url    string
	where  string // the URL without path and query, which may hold a token: for errors
	secret []byte
	client *http.Client
}

func newWebhook(c Channel) *webhook {
	u, _ := url.Parse(c.URL) // checked by Validate
	return &webhook{
		url: c.URL, where: u.Scheme + "://" + u.Host, secret: []byte(c.Secret),
		client: &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			Timeout:   c.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// statusError is an answer other than 2xx.
type statusError struct {
	code       int
	text       string        // the start of the answer's body, on one line
	retryAfter time.Duration // the answer's Retry-After, 0 if none
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("webhook answered %d %s", e.code, http.StatusText(e.code))
	if e.code/100 == 3 {
		msg += " (redirects are not followed)"
	}
	if e.text != "" {
		msg += ": " + e.text
	}
	return msg
}

// retryAfter is the wait a failed attempt's answer asked for (0 if none).
func retryAfter(err error) time.Duration {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.retryAfter
	}
	return 0
}

// maxAnswer bounds how much of an answer's body is read: its start for the error, the
// rest so that the connection can be used again.
const (
	maxAnswerText  = 200
	maxAnswerDrain = 64 << 10
)

func (w *webhook) send(ctx context.Context, m *message) error {
	body, err := webhookBody(m)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.where, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ph-cloud/"+version.Version)
	req.Header.Set(SignatureHeader, Sign(w.secret, body))
	req.Header.Set(DeliveryHeader, m.id)
	resp, err := w.client.Do(req)
	if err != nil {
		// url.Error repeats the whole URL, which may hold a token.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("webhook %s: %w", w.where, err)
	}
	defer resp.Body.Close()
	start, _ := io.ReadAll(io.LimitReader(resp.Body, 4*maxAnswerText))
	// Draining decides only whether the connection can be used again: the status is the
	// answer.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerDrain))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return &statusError{
		code:       resp.StatusCode,
		text:       clip(oneLine(strings.ToValidUTF8(string(start), "�")), maxAnswerText),
		retryAfter: backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
}

func (w *webhook) close() { w.client.CloseIdleConnections() }
