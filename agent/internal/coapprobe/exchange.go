package coapprobe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Exchange is one request and its response, for a technician checking a probe by hand.
type Exchange struct {
	Request     string `json:"request"`                // "GET coap://sonde.local:5683/do"
	Response    string `json:"response,omitempty"`     // "2.05 Content"; "" without a response
	ContentType string `json:"content_type,omitempty"` // "application/json (50)"; "" when absent
	// Payload is the payload as text, cut to 256 bytes (Truncated then), invalid UTF-8
	// replaced.
	Payload   string        `json:"payload"`
	Truncated bool          `json:"truncated,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	// Value, Unit and Time are the decoded reading, as the device sent it (not yet
	// normalized by the pipeline); Time is zero when the payload carries none.
	Value *float64  `json:"value,omitempty"`
	Unit  string    `json:"unit,omitempty"`
	Time  time.Time `json:"time,omitzero"`
	Error string    `json:"error,omitempty"`
}

// Test sends one GET now, on a connection of its own, and reports the exchange. It stores
// nothing and counts nothing, and may run while Run runs. The error says what went wrong
// (no response, an error code, a payload that is not a reading); the Exchange holds what
// got that far.
func (p *Probe) Test(ctx context.Context) (Exchange, error) {
	ex := Exchange{Request: "GET " + p.cfg.URL}
	start := time.Now()
	n, err := p.testGet(ctx)
	ex.Elapsed = time.Since(start)
	if err == nil {
		ex.Response = codeString(n.code)
		if n.hasFormat {
			ex.ContentType = fmt.Sprintf("%s (%d)", n.format, uint16(n.format))
		}
		body := n.body
		if len(body) > payloadShown {
			body, ex.Truncated = body[:payloadShown], true
		}
		ex.Payload = strings.ToValidUTF8(string(body), "\uFFFD")
		err = p.testDecode(n, &ex)
	}
	if err != nil {
		ex.Error = err.Error()
	}
	return ex, err
}

func (p *Probe) testGet(ctx context.Context) (note, error) {
	conn, closeConn, err := p.dial(ctx)
	if err != nil {
		return note{}, err
	}
	defer closeConn()
	n, err := p.get(ctx, conn)
	if err != nil {
		return note{}, err
	}
	return n, nil
}

func (p *Probe) testDecode(n note, ex *Exchange) error {
	switch {
	case !n.success():
		return fmt.Errorf("response %s%s", codeString(n.code), diagnostic(n.body))
	case n.code == codes.Valid:
		return errors.New("response 2.03 Valid carries no reading")
	}
	obs, err := decodePayload(p.cfg.Param, n.format, n.hasFormat, n.body, p.cfg.Location)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	ex.Value, ex.Unit, ex.Time = &obs.Value, obs.Unit, obs.Time
	return nil
}
