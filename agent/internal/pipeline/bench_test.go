package pipeline

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/validate"
	"github.com/purehealth/purehealth/shared/wqi"
)

// BenchmarkIngestOne measures the agent's own work per MQTT reading (one observation per
// call, as the broker delivers them), with the spool's fsync off so the CPU cost shows.
func BenchmarkIngestOne(b *testing.B) {
	sp, err := spool.Open(spool.Options{Path: filepath.Join(b.TempDir(), "agent.db"), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	st := state.New(state.Options{Station: "S", Method: wqi.BensonKrause, PressureAtm: 1,
		Freshness: func(telemetry.Param) time.Duration { return time.Hour }})
	alerts, err := alerting.New(alerting.Options{Station: "S", Class: criteria.ClassB}, sp, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := New(Options{Station: "S"}, Deps{Store: store{sp}, Checker: validate.New(validate.Config{}),
		State: st, Alerts: alerts, Clock: syncedClock(true), Outputs: discard{}})
	params := []string{"ph", "do", "bod", "fc", "temp", "tds", "turbidity", "conductivity"}
	base := []float64{7.4, 6.5, 2.5, 300, 27, 300, 20, 500}
	b.ReportAllocs()
	b.SetParallelism(100) // about 200 sensors publishing at once, as in the broker benchmark
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k := i % len(params)
			o := telemetry.Observation{Param: params[k], Sensor: params[k] + "-" + strconv.Itoa(i%64),
				Value: base[k] * (1 + float64(i%7)/100)}
			if _, err := p.Ingest(b.Context(), []telemetry.Observation{o}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

type discard struct{}

func (discard) Publish(string, []byte, bool, byte) error { return nil }
