package store

import (
	"fmt"
	"math"
	"strings"

	"github.com/purehealth/purehealth/shared/wire"
)

// CheckBatch reports what in a decoded batch the database cannot hold as sent: a seq or
// alert id beyond bigint, or a NUL character (PostgreSQL text cannot contain one). The
// error is a *wire.FieldError naming the first such field. A batch that wire.Decode
// accepted passes it; Ingest runs it for batches built otherwise.
func CheckBatch(b *wire.Batch) error {
	bad := func(field, msg string) error { return &wire.FieldError{Field: field, Msg: msg} }
	text := func(field, s string) error {
		if strings.IndexByte(s, 0) >= 0 {
			return bad(field, "contains a NUL character")
		}
		return nil
	}
	tooBig := func(v uint64) bool { return v > math.MaxInt64 }
	if err := text("station", b.Station); err != nil {
		return err
	}
	if err := text("agent", b.Agent); err != nil {
		return err
	}
	for i, r := range b.Readings {
		// Named only on failure: this runs for every reading.
		if tooBig(r.Seq) {
			return bad(fmt.Sprintf("readings[%d].seq", i), "exceeds 2^63-1")
		}
		if strings.IndexByte(r.Sensor, 0) >= 0 {
			return text(fmt.Sprintf("readings[%d].sensor", i), r.Sensor)
		}
		if r.SampleID != "" || r.Lab != "" || r.Method != "" {
			for _, f := range []struct{ name, v string }{{"sample_id", r.SampleID}, {"lab", r.Lab}, {"method", r.Method}} {
				if err := text(fmt.Sprintf("readings[%d].%s", i, f.name), f.v); err != nil {
					return err
				}
			}
		}
	}
	for i, a := range b.Alerts {
		at := fmt.Sprintf("alerts[%d]", i)
		switch {
		case tooBig(a.Seq):
			return bad(at+".seq", "exceeds 2^63-1")
		case tooBig(a.ID):
			return bad(at+".id", "exceeds 2^63-1")
		}
		for _, f := range []struct{ name, v string }{
			{"rule", a.Rule}, {"key", a.Key}, {"param", a.Param}, {"sensor", a.Sensor}, {"message", a.Message},
		} {
			if err := text(at+"."+f.name, f.v); err != nil {
				return err
			}
		}
	}
	for i, w := range b.WQI {
		at := fmt.Sprintf("wqi[%d]", i)
		if tooBig(w.Seq) {
			return bad(at+".seq", "exceeds 2^63-1")
		}
		if err := text(at+".category", w.Category); err != nil {
			return err
		}
		if len(w.Category) > 256 {
			return bad(at+".category", "longer than 256 bytes")
		}
		for j, m := range w.Missing {
			if err := text(fmt.Sprintf("%s.missing[%d]", at, j), m); err != nil {
				return err
			}
		}
		if len(w.Missing) > 64 || len(w.SubIndices) > 64 {
			return bad(at, "more than 64 missing parameters or sub-indices")
		}
		for k := range w.SubIndices {
			if err := text(at+".sub_indices", k); err != nil {
				return err
			}
		}
	}
	if b.Health != nil {
		// Its names exclude control characters, NUL among them, which jsonb refuses.
		return b.Health.Validate()
	}
	return nil
}
