package state

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// A new inventory: a probe removed is dropped with its history and named, one added is
// expected from now on, a device already heard of on the broker becomes configured with
// its history kept, an unconfigured device stays as it is, and a changed interval replaces
// a learned one.
func TestExpectReplacesTheInventory(t *testing.T) {
	s := newStation(
		SensorSpec{Name: "ph-1", Kind: "serial", Param: telemetry.PH, Interval: time.Minute},
		SensorSpec{Name: "do-1", Kind: "coap", Param: telemetry.DO, Interval: time.Minute},
	)
	s.Observe([]telemetry.Reading{
		r(1, "ph-1", telemetry.PH, 7.1, t0, telemetry.Good),
		r(2, "turb-9", telemetry.Turbidity, 4, t0, telemetry.Good),
		r(3, "temp-3", telemetry.Temp, 25, t0, telemetry.Good),
	}, t0)

	dropped := s.Expect([]SensorSpec{
		{Name: "ph-1", Kind: "serial", Param: telemetry.PH, Interval: 2 * time.Minute},
		{Name: "turb-9", Kind: "http", Param: telemetry.Turbidity, Interval: 30 * time.Second},
		{Name: "bod-1", Kind: "http", Param: telemetry.BOD, Interval: time.Hour},
	})
	assert.Equal(t, []string{"do-1"}, dropped)

	byName := map[string]Sensor{}
	for _, sen := range s.Sensors() {
		byName[sen.Name] = sen
	}
	require.Len(t, byName, 4, "ph-1, turb-9, bod-1 and the unconfigured temp-3: %v", byName)
	assert.NotContains(t, byName, "do-1")
	assert.Equal(t, 2*time.Minute, byName["ph-1"].Interval)
	assert.Equal(t, uint64(1), byName["ph-1"].Readings, "a kept probe keeps its history")
	assert.True(t, byName["turb-9"].Expected)
	assert.Equal(t, "http", byName["turb-9"].Kind)
	assert.Equal(t, uint64(1), byName["turb-9"].Readings, "a device made a probe keeps its history")
	assert.True(t, byName["bod-1"].Expected)
	assert.Equal(t, time.Hour, byName["bod-1"].Interval)
	assert.False(t, byName["temp-3"].Expected, "a device nobody configured stays unconfigured")

	s.SetOfflineFactor(5)
	assert.Equal(t, 5.0, s.OfflineFactor())
	s.SetOfflineFactor(0)
	assert.Equal(t, float64(DefaultOfflineFactor), s.OfflineFactor())
}
