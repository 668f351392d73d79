package uplink

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/pipeline"
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
	a := wire.NewAlertEvent(rec.Seq, string(ev.Transition), ev.Time, ev.Alert)
	return item{st: spool.Alerts, seq: rec.Seq, a: &a}, nil
}

// wqiItem converts a stored WQI record (JSON of pipeline.WQIMessage).
func wqiItem(rec spool.Record) (item, error) {
	var m pipeline.WQIMessage
	if err := json.Unmarshal(rec.Data, &m); err != nil {
		return item{}, fmt.Errorf("WQI record does not decode: %w", err)
	}
	if m.Result == nil {
		return item{}, errors.New("WQI record holds no index value")
	}
	w := wire.FromWQI(rec.Seq, m.Time, *m.Result)
	return item{st: spool.WQI, seq: rec.Seq, w: &w}, nil
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
