package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/agent/internal/admin"
)

// newProbeCommand groups the commissioning commands a technician uses at the river bank:
// see every probe's state, take one reading now, calibrate a serial (EZO) circuit.
func newProbeCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "probe", Short: "Commission probes: status, a test reading, calibration"}
	cmd.AddCommand(
		queryCommand(e, "status", "Every configured probe as its driver sees it", cobra.NoArgs,
			func(ctx context.Context, c *admin.Client, _ *cobra.Command, _ []string) (any, error) {
				return c.Probes(ctx)
			},
			func(w io.Writer, v any, now time.Time) error { return renderProbes(w, v.(admin.Probes).Probes, now) }),
		queryCommand(e, "test NAME", "Take one reading now and show the raw exchange and the parsed value", cobra.ExactArgs(1),
			func(ctx context.Context, c *admin.Client, _ *cobra.Command, args []string) (any, error) {
				return c.ProbeTest(ctx, args[0])
			},
			func(w io.Writer, v any, _ time.Time) error { return renderExchange(w, v.(json.RawMessage)) }),
		queryCommand(e, "calibrate NAME POINT [VALUE]",
			"Calibrate an EZO circuit: pH mid 7.00 | low 4.00 | high 10.00, DO air | zero, EC dry | single | low | high VALUE, clear",
			cobra.RangeArgs(2, 3),
			func(ctx context.Context, c *admin.Client, _ *cobra.Command, args []string) (any, error) {
				var value float64
				if len(args) == 3 {
					v, err := strconv.ParseFloat(args[2], 64)
					if err != nil {
						return nil, fmt.Errorf("calibration value %q is not a number", args[2])
					}
					value = v
				}
				return c.ProbeCalibrate(ctx, args[0], args[1], value)
			},
			func(w io.Writer, v any, _ time.Time) error { return renderExchange(w, v.(json.RawMessage)) }),
	)
	return cmd
}

// exchangeView covers the exchanges of every probe kind: serial lines, or a request and
// its response for CoAP and HTTP.
type exchangeView struct {
	Sent        []string `json:"sent"`
	Received    []string `json:"received"`
	Request     string   `json:"request"`
	Response    string   `json:"response"`
	ContentType string   `json:"content_type"`
	Payload     string   `json:"payload"`
	Value       *float64 `json:"value"`
	Unit        string   `json:"unit"`
	Error       string   `json:"error"`
	Took        int64    `json:"took"`
	Elapsed     int64    `json:"elapsed_ns"`
}

func renderExchange(w io.Writer, raw json.RawMessage) error {
	var x exchangeView
	if err := json.Unmarshal(raw, &x); err != nil {
		return fmt.Errorf("decode exchange: %w", err)
	}
	for _, s := range x.Sent {
		fmt.Fprintf(w, "> %s\n", s)
	}
	for _, r := range x.Received {
		fmt.Fprintf(w, "< %s\n", r)
	}
	if x.Request != "" {
		fmt.Fprintf(w, "> %s\n", x.Request)
		resp := x.Response
		if resp == "" {
			resp = "(no response)"
		}
		if x.ContentType != "" {
			resp += " [" + x.ContentType + "]"
		}
		fmt.Fprintf(w, "< %s\n", resp)
		if x.Payload != "" {
			fmt.Fprintf(w, "< %s\n", x.Payload)
		}
	}
	took := time.Duration(max(x.Took, x.Elapsed))
	switch {
	case x.Error != "":
		fmt.Fprintf(w, "error: %s (%s)\n", x.Error, took.Round(time.Millisecond))
	case x.Value != nil:
		fmt.Fprintf(w, "value: %s (%s)\n", strings.TrimSpace(fmt.Sprintf("%g %s", *x.Value, x.Unit)), took.Round(time.Millisecond))
	default:
		fmt.Fprintf(w, "ok (%s)\n", took.Round(time.Millisecond))
	}
	return nil
}

// probeStatusView is what the table shows of any driver's status.
type probeStatusView struct {
	Open, Identified, Connected, WrongCircuit bool
	Circuit, Firmware, Mode, LastError        string
	Readings, Reconnects                      uint64
	LastReadingAt, LastErrorAt                time.Time
}

func (v *probeStatusView) UnmarshalJSON(b []byte) error {
	var m struct {
		Open          bool      `json:"open"`
		Identified    bool      `json:"identified"`
		Connected     bool      `json:"connected"`
		WrongCircuit  bool      `json:"wrong_circuit"`
		Circuit       string    `json:"circuit"`
		Firmware      string    `json:"firmware"`
		Mode          string    `json:"mode"`
		LastError     string    `json:"last_error"`
		Readings      uint64    `json:"readings"`
		Reconnects    uint64    `json:"reconnects"`
		LastReadingAt time.Time `json:"last_reading_at"`
		LastErrorAt   time.Time `json:"last_error_at"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*v = probeStatusView(m)
	return nil
}

func renderProbes(w io.Writer, ps []admin.Probe, now time.Time) error {
	if len(ps) == 0 {
		_, err := fmt.Fprintln(w, "No probes configured.")
		return err
	}
	t := table(w)
	fmt.Fprintln(t, "NAME\tKIND\tPARAM\tSTATE\tLAST READING\tREADINGS\tRECONNECTS\tCALIBRATED\tLAST ERROR")
	for _, p := range ps {
		var s probeStatusView
		if err := json.Unmarshal(p.Status, &s); err != nil {
			return fmt.Errorf("decode status of %s: %w", p.Name, err)
		}
		state := "down"
		switch {
		case p.Kind == "http" && !s.LastReadingAt.IsZero() && s.LastReadingAt.After(s.LastErrorAt):
			state = "up (polling)" // no connection state: judged by its last answer
		case p.Kind == "http" && !s.LastErrorAt.IsZero():
			state = "failing"
		case s.WrongCircuit:
			state = "WRONG CIRCUIT " + s.Circuit
		case s.Identified:
			state = "up " + strings.TrimSpace(s.Circuit+" "+s.Firmware)
		case s.Open || s.Connected:
			state = "up"
			if s.Mode != "" {
				state += " (" + s.Mode + ")"
			}
		}
		cal := "-"
		if len(p.Calibration) > 0 {
			var c struct {
				Point string    `json:"point"`
				At    time.Time `json:"at"`
			}
			if json.Unmarshal(p.Calibration, &c) == nil {
				cal = c.Point + " " + age(c.At, now)
			}
		}
		lastErr := s.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", p.Name, p.Kind, p.Param, state,
			age(s.LastReadingAt, now), s.Readings, s.Reconnects, cal, lastErr)
	}
	return t.Flush()
}
