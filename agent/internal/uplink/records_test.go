package uplink

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/pipeline"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
	"github.com/purehealth/purehealth/shared/wqi"
)

// TestAlertRecordTravelsWhole: an alert event as the agent stores it reaches the batch,
// and the cloud that decodes it, as the same record, times in UTC.
func TestAlertRecordTravelsWhole(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	opened := time.Date(2026, 7, 1, 15, 30, 0, 0, ist)
	acked, v, limit := opened.Add(time.Minute), 4.2, 5.0
	ev := alerting.Event{Transition: alerting.AcknowledgedTr, Time: acked, Alert: alert.Record{
		ID: 9, Station: station, Rule: alerting.RuleThreshold, Key: "threshold:cpcb-class-B:do:min",
		Param: "do", Sensor: "do-1", Severity: alert.Critical, State: alert.Acknowledged, OpenedAt: opened,
		AcknowledgedAt: &acked, Message: "DO below 5 mg/L", Value: &v, Limit: &limit,
	}}
	data, err := json.Marshal(ev)
	require.NoError(t, err)

	it, err := alertItem(spool.Record{Seq: 31, Data: data})
	require.NoError(t, err)
	got := *it.a
	assert.Equal(t, uint64(31), got.Seq)
	assert.Equal(t, "acknowledged", got.Transition)
	assert.True(t, got.Time.Equal(acked) && got.Time.Location() == time.UTC)
	assert.Equal(t, ev.Alert.Portable(), got.Record)

	// Through the wire format and back, as the cloud reads it.
	body, err := wire.Encode(&wire.Batch{Station: station, SentAt: acked, Alerts: []wire.AlertEvent{got}})
	require.NoError(t, err)
	b, err := wire.Decode(bytes.NewReader(body), true)
	require.NoError(t, err)
	require.Len(t, b.Alerts, 1)
	assert.Equal(t, got, b.Alerts[0])
}

// TestWQIRecordTravelsWhole: a WQI record as the pipeline stores it reaches the batch with
// the values it was published with.
func TestWQIRecordTravelsWhole(t *testing.T) {
	res, err := wqi.Compute(wqi.Input{Values: map[telemetry.Param]float64{
		telemetry.DO: 6.1, telemetry.PH: 7.4, telemetry.BOD: 2.3,
	}})
	require.NoError(t, err)
	at := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	data, err := json.Marshal(pipeline.WQIMessage{Station: station, Time: at, Result: &res})
	require.NoError(t, err)
	var published struct {
		WQI        float64            `json:"wqi"`
		Class      string             `json:"class"`
		Category   string             `json:"category"`
		Partial    bool               `json:"partial"`
		Missing    []string           `json:"missing"`
		SubIndices map[string]float64 `json:"sub_indices"`
		DOSat      *float64           `json:"do_saturation_pct"`
	}
	require.NoError(t, json.Unmarshal(data, &published))

	it, err := wqiItem(spool.Record{Seq: 4, Data: data})
	require.NoError(t, err)
	got := *it.w
	assert.Equal(t, wire.WQIPoint{Seq: 4, Time: at, WQI: published.WQI, Class: published.Class,
		Category: published.Category, Partial: true, Missing: []string{"fc"},
		SubIndices: published.SubIndices, DOSaturationPct: published.DOSat}, got)
	assert.Equal(t, published.Missing, got.Missing)

	// A message that gives only a reason holds no index to send.
	data, err = json.Marshal(pipeline.WQIMessage{Station: station, Time: at, Reason: "no fresh values"})
	require.NoError(t, err)
	_, err = wqiItem(spool.Record{Seq: 5, Data: data})
	assert.ErrorContains(t, err, "holds no index value")
}
