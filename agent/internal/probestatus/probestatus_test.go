package probestatus

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/probetest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func newRecorder(t *testing.T, sink Sink) (*Recorder, func() (errors, reconnects uint64)) {
	t.Helper()
	st := probetest.Station("coap", "do-1", telemetry.DO, time.Minute)
	health := func() (uint64, uint64) {
		s := probetest.Sensor(t, st, "do-1")
		return s.Errors, s.Reconnects
	}
	return New("do-1", telemetry.DO, sink, st, probetest.Logger(t)), health
}

func TestStoreOutcomes(t *testing.T) {
	good := telemetry.Observation{Sensor: "do-1", Param: "do", Value: 6.5, Unit: "mg/L"}
	odd := telemetry.Observation{Sensor: "do-1", Param: "do", Value: 6.5, Unit: "furlongs"}
	tests := []struct {
		name    string
		fail    error
		obs     telemetry.Observation
		want    Outcome
		counts  func(c Counts) uint64
		lastErr string
	}{
		{"stored", nil, good, Stored, func(c Counts) uint64 { return c.Readings }, ""},
		{"refused", nil, odd, Rejected, func(c Counts) uint64 { return c.Rejected }, "refused: "},
		{"not stored", errors.New("disk full"), good, NotStored, func(c Counts) uint64 { return c.NotStored }, "store: disk full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, health := newRecorder(t, &probetest.Sink{Fail: tt.fail})
			assert.Equal(t, tt.want, r.Store(t.Context(), tt.obs))
			c := r.Counts()
			assert.Equal(t, uint64(1), tt.counts(c))
			assert.Equal(t, uint64(1), c.Readings+c.Rejected+c.NotStored, "one outcome per reading: %+v", c)
			if tt.lastErr == "" {
				assert.Empty(t, c.LastError)
				assert.Equal(t, 6.5, c.LastValue)
				assert.False(t, c.LastReadingAt.IsZero())
			} else {
				assert.Contains(t, c.LastError, tt.lastErr)
				assert.False(t, c.LastErrorAt.IsZero())
			}
			errs, _ := health()
			assert.Zero(t, errs, "the pipeline, not the probe, counts refusals and store failures")
			assert.Zero(t, c.Errors)
		})
	}
}

// The end of the probe's context does not reach the sink: a reading in hand is kept.
func TestStoreOutlivesItsContext(t *testing.T) {
	s := &probetest.Sink{}
	r, _ := newRecorder(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.Equal(t, Stored, r.Store(ctx, telemetry.Observation{Param: "do", Value: 6.5, Unit: "mg/L"}))
	assert.Equal(t, 1, s.Count())
}

func TestFaultsAndReconnects(t *testing.T) {
	r, health := newRecorder(t, &probetest.Sink{})
	r.Fault("garbage", errors.New("a stray byte"))
	r.Fail("timeout", errors.New("no answer"))
	r.Fail("timeout", errors.New("no answer again"))
	r.Reconnected()
	c := r.Counts()
	assert.Equal(t, uint64(3), c.Errors)
	assert.Equal(t, map[string]uint64{"garbage": 1, "timeout": 2}, c.ErrorsByKind)
	assert.Equal(t, "timeout: no answer again", c.LastError)
	assert.Equal(t, uint64(1), c.Reconnects)
	errs, reconnects := health()
	assert.Equal(t, uint64(3), errs, "every fault is in Health too")
	assert.Equal(t, uint64(1), reconnects)

	r.Note(errors.New("port not there yet"))
	c = r.Counts()
	assert.Equal(t, "port not there yet", c.LastError)
	assert.Equal(t, uint64(3), c.Errors, "a note is not counted")

	c.ErrorsByKind["timeout"] = 99
	assert.Equal(t, uint64(2), r.Counts().ErrorsByKind["timeout"], "a snapshot is a copy")
}

func TestFailStreak(t *testing.T) {
	r, _ := newRecorder(t, &probetest.Sink{})
	assert.True(t, r.fault("timeout", errors.New("x"), true), "the first failure starts a streak")
	assert.False(t, r.fault("timeout", errors.New("x"), true))
	assert.False(t, r.fault("garbage", errors.New("x"), false), "a fault alone is no failure")
	r.Store(t.Context(), telemetry.Observation{Param: "do", Value: 6.5, Unit: "mg/L"})
	assert.True(t, r.fault("timeout", errors.New("x"), true), "a stored reading ends the streak")
}

// Statuses embed Counts: its fields sit among the probe's own in JSON.
func TestCountsInJSON(t *testing.T) {
	type status struct {
		Name string `json:"name"`
		Counts
	}
	r, _ := newRecorder(t, &probetest.Sink{})
	r.Fail("timeout", errors.New("no answer"))
	b, err := json.Marshal(status{Name: "do-1", Counts: r.Counts()})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"name", "readings", "rejected", "not_stored", "errors", "errors_by_kind", "reconnects", "last_error"} {
		assert.Contains(t, m, k)
	}
	assert.InDelta(t, 1, m["errors"], 0)
}

func TestCheck(t *testing.T) {
	st := probetest.Station("coap", "do-1", telemetry.DO, time.Minute)
	tests := []struct {
		name   string
		sensor string
		param  telemetry.Param
		sink   Sink
		health Health
		want   []string
	}{
		{"complete", "do-1", telemetry.DO, &probetest.Sink{}, st, nil},
		{"no name", "", telemetry.DO, &probetest.Sink{}, st, []string{"name is required"}},
		{"an alias", "do-1", "DO", &probetest.Sink{}, st, []string{`param "DO" is not a canonical parameter`}},
		{"no sink", "do-1", telemetry.DO, nil, st, []string{"sink and health are required"}},
		{"no health", "do-1", telemetry.DO, &probetest.Sink{}, nil, []string{"sink and health are required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, err := range Check(tt.sensor, tt.param, tt.sink, tt.health) {
				got = append(got, err.Error())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
