package uplink

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

// item is one record on its way to the cloud, converted to the wire format.
type item struct {
	st   spool.Stream
	seq  uint64
	lane lane
	r    *wire.Reading
	a    *wire.AlertEvent
	w    *wire.WQIPoint
}

// lane is the lane an item travels in. A batch may hold records of one stream from both
// lanes (the oldest readings of the backlog and the newest ones), with many seqs between
// them that it does not hold: what an acknowledgement confirms is worked out per lane.
type lane uint8

const (
	backlogLane lane = iota // read from the cursor up
	liveLane                // read from the newest down
)

// unsendable is a stored record that cannot be put in a batch at all (it does not decode,
// or holds a value JSON cannot carry). It is set aside like a record the cloud refused.
type unsendable struct {
	st  spool.Stream
	seq uint64
	why string
}

func readingItem(r telemetry.Reading) (item, error) {
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		return item{}, errors.New("value is not a finite number")
	}
	w := wire.FromReading(r)
	return item{st: spool.Readings, seq: r.Seq, r: &w}, nil
}

// alertItem converts a stored alert event (JSON of alerting.Event).
func alertItem(rec spool.Record) (item, error) {
	var ev alerting.Event
	if err := json.Unmarshal(rec.Data, &ev); err != nil {
		return item{}, fmt.Errorf("alert event does not decode: %w", err)
	}
	a := wire.AlertEvent{
		Seq: rec.Seq, ID: ev.ID, Transition: string(ev.Transition), Time: ev.Time.UTC(),
		Rule: ev.Rule, Key: ev.Key, Param: ev.Param, Sensor: ev.Sensor,
		Severity: string(ev.Severity), State: string(ev.State), OpenedAt: ev.OpenedAt.UTC(),
		AcknowledgedAt: utcPtr(ev.AcknowledgedAt), ResolvedAt: utcPtr(ev.ResolvedAt),
		Message: ev.Message, Value: finitePtr(ev.Value), Limit: finitePtr(ev.Limit),
	}
	return item{st: spool.Alerts, seq: rec.Seq, a: &a}, nil
}

// storedWQI is the part of a stored WQI record (pipeline.WQIMessage, the result flattened
// into it) that travels.
type storedWQI struct {
	Time            time.Time          `json:"time"`
	WQI             *float64           `json:"wqi"`
	Class           string             `json:"class"`
	Category        string             `json:"category"`
	Partial         bool               `json:"partial"`
	Missing         []string           `json:"missing"`
	SubIndices      map[string]float64 `json:"sub_indices"`
	DOSaturationPct *float64           `json:"do_saturation_pct"`
}

func wqiItem(rec spool.Record) (item, error) {
	var s storedWQI
	if err := json.Unmarshal(rec.Data, &s); err != nil {
		return item{}, fmt.Errorf("WQI record does not decode: %w", err)
	}
	if s.WQI == nil || math.IsNaN(*s.WQI) || math.IsInf(*s.WQI, 0) {
		return item{}, errors.New("WQI record holds no index value")
	}
	if s.Missing == nil {
		s.Missing = []string{}
	}
	for k, v := range s.SubIndices {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(s.SubIndices, k)
		}
	}
	w := wire.WQIPoint{
		Seq: rec.Seq, Time: s.Time.UTC(), WQI: *s.WQI, Class: s.Class, Category: s.Category,
		Partial: s.Partial, Missing: s.Missing, SubIndices: s.SubIndices,
		DOSaturationPct: finitePtr(s.DOSaturationPct),
	}
	return item{st: spool.WQI, seq: rec.Seq, w: &w}, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// finitePtr drops a value JSON cannot carry rather than lose the whole record.
func finitePtr(v *float64) *float64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return nil
	}
	return v
}

// toBatch builds the wire batch of items.
func toBatch(station string, sentAt time.Time, items []item) (*wire.Batch, [numStreams + 1]uint64) {
	var top [numStreams + 1]uint64
	b := &wire.Batch{V: wire.Version, Station: station, SentAt: sentAt.UTC()}
	for _, it := range items {
		top[it.st] = max(top[it.st], it.seq)
		switch it.st {
		case spool.Readings:
			b.Readings = append(b.Readings, *it.r)
		case spool.Alerts:
			b.Alerts = append(b.Alerts, *it.a)
		case spool.WQI:
			b.WQI = append(b.WQI, *it.w)
		}
	}
	return b, top
}
