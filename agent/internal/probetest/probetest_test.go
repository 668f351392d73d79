package probetest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestSink(t *testing.T) {
	tests := []struct {
		name       string
		fail       error
		obs        []telemetry.Observation
		wantKept   int
		wantReject []bool
		wantErr    error
	}{
		{
			name: "keeps what telemetry accepts",
			obs: []telemetry.Observation{
				{Param: "do", Value: 6.5, Unit: "mg/L"},
				{Param: "ph", Value: 7.1},
			},
			wantKept: 2, wantReject: []bool{false, false},
		},
		{
			name: "refuses what telemetry refuses",
			obs: []telemetry.Observation{
				{Param: "ph", Value: 7, Unit: "mg/L"},
				{Param: "do", Value: 6.5, Unit: "mg/L"},
				{Param: "no-such-param", Value: 1},
			},
			wantKept: 1, wantReject: []bool{true, false, true},
		},
		{
			name:     "a failing store keeps nothing",
			fail:     errors.New("disk full"),
			obs:      []telemetry.Observation{{Param: "do", Value: 6.5, Unit: "mg/L"}},
			wantKept: 0, wantReject: []bool{false}, wantErr: errors.New("disk full"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Sink{Fail: tt.fail}
			rejected, err := s.Ingest(t.Context(), tt.obs)
			assert.Equal(t, tt.wantErr, err)
			require.Len(t, rejected, len(tt.obs), "one verdict per observation")
			for i, want := range tt.wantReject {
				assert.Equal(t, want, rejected[i] != nil, "observation %d: %v", i, rejected[i])
			}
			assert.Equal(t, tt.wantKept, s.Count())
			assert.Len(t, s.Readings(), tt.wantKept)
		})
	}
}

func TestSinkWaitReadings(t *testing.T) {
	s := &Sink{}
	go func() {
		for range 3 {
			if _, err := s.Ingest(context.Background(), []telemetry.Observation{{Param: "do", Value: 6.5, Unit: "mg/L"}}); err != nil {
				t.Error(err)
			}
		}
	}()
	assert.Len(t, s.WaitReadings(t, 3), 3)
}

func TestStationAndSensor(t *testing.T) {
	st := Station("coap", "do-1", telemetry.DO, time.Second)
	s := Sensor(t, st, "do-1")
	assert.Equal(t, "coap", s.Kind)
	assert.Equal(t, telemetry.DO, s.Param)
}

// stopper is a Runner that returns err once its context ends.
type stopper struct{ err error }

func (s stopper) Run(ctx context.Context) error {
	<-ctx.Done()
	return s.err
}

func TestRun(t *testing.T) {
	var ran bool
	t.Run("runs until the test ends", func(t *testing.T) {
		Run(t, stopper{})
		ran = true
	})
	assert.True(t, ran)
}

func TestSinkGivesUpWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s := &Sink{}
	_, err := s.Ingest(ctx, []telemetry.Observation{{Param: "do", Value: 6.5, Unit: "mg/L"}})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, s.Count())
}

// once takes one reading and stores it, with its own context or one detached from it,
// then waits for its context to end.
type once struct {
	s      *Sink
	detach bool
}

func (o once) Run(ctx context.Context) error {
	sctx := ctx
	if o.detach {
		sctx = context.WithoutCancel(ctx)
	}
	if _, err := o.s.Ingest(sctx, []telemetry.Observation{{Param: "do", Value: 6.5, Unit: "mg/L"}}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// failures is a testing.TB that counts Errorf calls instead of failing the test.
type failures struct {
	testing.TB
	n int
}

func (f *failures) Errorf(string, ...any) { f.n++ }

func TestStoresTakenReadingAtShutdown(t *testing.T) {
	s := &Sink{}
	StoresTakenReadingAtShutdown(t, once{s: s, detach: true}, s)

	// A runner that passes its own context to the store loses the reading, and the check
	// says so.
	s, f := &Sink{}, &failures{TB: t}
	StoresTakenReadingAtShutdown(f, once{s: s}, s)
	assert.Equal(t, 2, f.n, "Run's error and the lost reading are both reported")
}
