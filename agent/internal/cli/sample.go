package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// newSampleCommand enters lab and field-kit results at the station: BOD and fecal
// coliform come from a lab, days after the sample was taken, and feed the station's own
// WQI within their freshness (31 days by default).
func newSampleCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "sample", Short: "Lab and field-kit samples (source manual)"}
	add := queryCommand(e, "add PARAM VALUE --at TIME", "Store a lab or field-kit result; it is forwarded like any reading",
		cobra.ExactArgs(2),
		func(ctx context.Context, c *admin.Client, cmd *cobra.Command, args []string) (any, error) {
			req, err := sampleRequest(cmd, args)
			if err != nil {
				return nil, err
			}
			return c.AddSample(ctx, req)
		},
		func(w io.Writer, v any, now time.Time) error {
			r := v.(admin.Reading)
			_, err := fmt.Fprintf(w, "stored as seq %d: %s %g %s taken %s (%s), %s, from %s\n", r.Seq, r.Param, r.Value,
				r.Unit, r.Time.UTC().Format(time.RFC3339), age(r.Time, now), r.Quality, r.Sensor)
			return err
		})
	add.Long = `Store a lab or field-kit result at the station, durably, with source manual. It
is forwarded to the cloud exactly once like any reading, listed by ph-agent readings,
and feeds the station's WQI while fresh (31 days for BOD and fecal coliform).

  ph-agent sample add bod 3.1 --unit mg/L --at 2026-12-01T09:30+05:30 --id PUN-1201-01 --lab "MPCB Pune" --method "APHA 5210 B"

TIME is when the sample was taken: RFC 3339, seconds optional, with its zone offset.`
	add.Flags().String("unit", "", "unit of VALUE (default the parameter's own: mg/L, MPN/100mL, ...)")
	add.Flags().String("at", "", "when the sample was taken, e.g. 2026-12-01T09:30+05:30 (required)")
	add.Flags().String("id", "", "the lab's sample id")
	add.Flags().String("lab", "", "the lab that analysed it")
	add.Flags().String("method", "", "the method, e.g. \"APHA 5210 B\"")
	cmd.AddCommand(add)
	return cmd
}

func sampleRequest(cmd *cobra.Command, args []string) (admin.SampleRequest, error) {
	p, err := telemetry.ParseParam(args[0])
	if err != nil {
		return admin.SampleRequest{}, err
	}
	v, err := strconv.ParseFloat(args[1], 64)
	if err != nil {
		return admin.SampleRequest{}, fmt.Errorf("value %q is not a number", args[1])
	}
	at, _ := cmd.Flags().GetString("at")
	if at == "" {
		return admin.SampleRequest{}, fmt.Errorf("--at is required: when the sample was taken, e.g. 2026-12-01T09:30+05:30")
	}
	t, err := telemetry.ParseSampleTime(at)
	if err != nil {
		return admin.SampleRequest{}, fmt.Errorf("--at: %w", err)
	}
	req := admin.SampleRequest{Param: string(p), Value: v, Time: t}
	req.Unit, _ = cmd.Flags().GetString("unit")
	req.SampleID, _ = cmd.Flags().GetString("id")
	req.Lab, _ = cmd.Flags().GetString("lab")
	req.Method, _ = cmd.Flags().GetString("method")
	s := telemetry.Sample{ID: req.SampleID, Lab: req.Lab, Method: req.Method}
	if field, err := s.Check(); err != nil {
		flag := map[string]string{"sample_id": "id"}[field]
		if flag == "" {
			flag = field
		}
		return admin.SampleRequest{}, fmt.Errorf("--%s: %w", flag, err)
	}
	return req, nil
}
