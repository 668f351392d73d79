package coapprobe

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"

	"github.com/purehealth/purehealth/agent/internal/payload"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Content formats the probe understands (RFC 7252 §12.3). The library declares its media
// types as variables; these are the registered numbers.
const (
	formatText message.MediaType = 0  // text/plain: a plain decimal number
	formatJSON message.MediaType = 50 // application/json: the contract's reading, or a bare number
)

// maxTextLen bounds a text/plain number; anything longer is not one.
const maxTextLen = 64

// Errors that decodePayload wraps, besides those of package payload.
var (
	errFormat = errors.New("unsupported content-format")
	errNumber = errors.New("not a decimal number")
)

// decodePayload turns one response payload into an observation of param. cf is the
// content-format option when hasFormat; without one the payload is sniffed: a JSON object
// or array is JSON, anything else must be a number. Time is zero when the payload carries
// none. Sensor and Station are left for the caller.
func decodePayload(param telemetry.Param, cf message.MediaType, hasFormat bool, data []byte, loc *time.Location) (telemetry.Observation, error) {
	if !hasFormat {
		cf = formatText
		if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			cf = formatJSON
		}
	}
	switch cf {
	case formatJSON:
		obs, err := payload.Decode(string(param), data, loc)
		if err != nil {
			return telemetry.Observation{}, err
		}
		if len(obs) != 1 { // a parameter leaf yields exactly one; guard the contract anyway
			return telemetry.Observation{}, fmt.Errorf("want one reading, got %d", len(obs))
		}
		return obs[0], nil
	case formatText:
		v, err := parseDecimal(data)
		if err != nil {
			return telemetry.Observation{}, err
		}
		return telemetry.Observation{Param: string(param), Value: v, Source: telemetry.SourceSensor}, nil
	}
	return telemetry.Observation{}, fmt.Errorf("%w %d (%s): want application/json (50) or text/plain (0)",
		errFormat, uint16(cf), cf)
}

// parseDecimal reads text like "7.21", "-0.5" or "1.2e3", surrounded by optional white
// space. Hexadecimal, "NaN", "Inf" and digit separators, which strconv would take, are
// refused: no probe means them.
func parseDecimal(data []byte) (float64, error) {
	s := bytes.TrimSpace(data)
	switch {
	case len(s) == 0:
		return 0, payload.ErrEmpty
	case len(s) > maxTextLen:
		return 0, fmt.Errorf("%w: %d bytes of text", errNumber, len(s))
	}
	if !isDecimal(s) {
		return 0, fmt.Errorf("%w: %q", errNumber, s)
	}
	v, err := strconv.ParseFloat(string(s), 64)
	if err != nil { // only a range error remains possible: 1e999
		return 0, fmt.Errorf("%w: %q", telemetry.ErrNotFinite, s)
	}
	return v, nil
}

// isDecimal reports whether s is [+-]digits[.digits][(e|E)[+-]digits] with at least one
// digit before the exponent.
func isDecimal(s []byte) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}
