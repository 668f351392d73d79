package alert

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSeverityAndState(t *testing.T) {
	assert.True(t, Info.Rank() < Warning.Rank() && Warning.Rank() < Critical.Rank())
	for _, s := range []Severity{Info, Warning, Critical} {
		assert.True(t, s.Valid(), s)
	}
	assert.False(t, Severity("fatal").Valid())
	for _, s := range []State{Active, Acknowledged, Resolved} {
		assert.True(t, s.Valid(), s)
	}
	assert.False(t, State("closed").Valid())
}

// TestRecordJSON pins the contract field names and which of them are left out when empty.
func TestRecordJSON(t *testing.T) {
	opened := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	v, limit := 4.2, 5.0
	r := Record{ID: 7, Station: "MH-PUNE-001", Rule: "threshold", Key: "threshold:cpcb-class-B:do:min",
		Param: "do", Sensor: "do-1", Severity: Warning, State: Active, OpenedAt: opened,
		Message: "DO below 5 mg/L", Value: &v, Limit: &limit}
	raw, err := json.Marshal(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":7,"station":"MH-PUNE-001","rule":"threshold","key":"threshold:cpcb-class-B:do:min",
		"param":"do","sensor":"do-1","severity":"warning","state":"active","opened_at":"2026-07-01T10:00:00Z",
		"resolved_at":null,"message":"DO below 5 mg/L","value":4.2,"limit":5}`, string(raw))

	var back Record
	require.NoError(t, json.Unmarshal(raw, &back))
	assert.Equal(t, r, back)
}

func TestPortable(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	at := time.Date(2026, 7, 1, 15, 30, 0, 0, ist)
	nan, inf, v := math.NaN(), math.Inf(1), 6.0
	r := Record{OpenedAt: at, AcknowledgedAt: &at, ResolvedAt: &at, Value: &nan, Limit: &inf}
	p := r.Portable()
	assert.Equal(t, time.UTC, p.OpenedAt.Location())
	assert.Equal(t, time.UTC, p.AcknowledgedAt.Location())
	assert.Equal(t, time.UTC, p.ResolvedAt.Location())
	assert.True(t, p.OpenedAt.Equal(at))
	assert.Nil(t, p.Value, "NaN cannot travel in JSON")
	assert.Nil(t, p.Limit, "nor can infinity")
	assert.Equal(t, ist, r.AcknowledgedAt.Location(), "the original is not changed")
	_, err := json.Marshal(p)
	assert.NoError(t, err)

	r.Value = &v
	assert.Equal(t, &v, r.Portable().Value)
	assert.Nil(t, Record{}.Portable().ResolvedAt)
}
