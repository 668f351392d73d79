package fusion

import (
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

// SourceFused is the source of a WQI the cloud computes from several sources' values.
const SourceFused = "fused"

// Input is one fused value that fed the index.
type Input struct {
	Value      float64   `json:"value"`
	Unit       string    `json:"unit"`
	Source     string    `json:"source"`
	Origin     string    `json:"origin,omitempty"`
	Sensor     string    `json:"sensor,omitempty"`
	Time       time.Time `json:"time"`
	AgeSeconds float64   `json:"age_seconds"`
}

// WQI is a station's fused index at Time: the CPCB WQI (shared/wqi) of the fused values of
// do, fc, ph and bod (and temp for the DO saturation), each input with its source, time
// and age. Its JSON is the index's contract shape with "time", "source": "fused" and
// "inputs" added.
type WQI struct {
	Time   time.Time
	Result wqi.Result
	Inputs map[string]Input // by parameter
}

// indexParams are the parameters that feed the index (temp through DO saturation).
var indexParams = []telemetry.Param{telemetry.DO, telemetry.FC, telemetry.PH, telemetry.BOD, telemetry.Temp}

// ComputeWQI computes the fused index at now from fused values (Fuse). A water temperature
// outside the range the DO saturation equation covers is left out (the saturation then
// assumes wqi.DefaultTempC) rather than leaving the station without an index. The error
// is wqi.ErrNoInputs when none of do, fc, ph and bod has a fused value.
func ComputeWQI(values map[string]Value, now time.Time, method wqi.DOMethod, pressureAtm float64) (WQI, error) {
	in := map[telemetry.Param]float64{}
	used := map[string]Input{}
	for _, p := range indexParams {
		v, ok := values[string(p)]
		if !ok {
			continue
		}
		in[p] = v.Value
		used[string(p)] = Input{Value: v.Value, Unit: v.Unit, Source: v.Source, Origin: v.Origin, Sensor: v.Sensor,
			Time: v.Time.UTC(), AgeSeconds: v.Age.Seconds()}
	}
	res, err := wqi.Compute(wqi.Input{Values: in, Method: method, PressureAtm: pressureAtm})
	if err != nil && !errors.Is(err, wqi.ErrNoInputs) {
		if _, hasTemp := in[telemetry.Temp]; hasTemp {
			delete(in, telemetry.Temp)
			delete(used, string(telemetry.Temp))
			res, err = wqi.Compute(wqi.Input{Values: in, Method: method, PressureAtm: pressureAtm})
		}
	}
	if err != nil {
		return WQI{}, err
	}
	return WQI{Time: now.UTC(), Result: res, Inputs: used}, nil
}

// MarshalJSON writes {"time", "source": "fused", ...the index's fields..., "inputs"}.
func (w WQI) MarshalJSON() ([]byte, error) {
	head, err := json.Marshal(struct {
		Time   time.Time `json:"time"`
		Source string    `json:"source"`
	}{w.Time.UTC(), SourceFused})
	if err != nil {
		return nil, err
	}
	res, err := json.Marshal(w.Result)
	if err != nil {
		return nil, err
	}
	inputs, err := json.Marshal(w.Inputs)
	if err != nil {
		return nil, err
	}
	// {"time":..,"source":..} + {"wqi":..} + "inputs"
	out := append(head[:len(head)-1:len(head)-1], ',')
	out = append(out, res[1:len(res)-1]...)
	out = append(out, `,"inputs":`...)
	out = append(out, inputs...)
	return append(out, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (w *WQI) UnmarshalJSON(data []byte) error {
	var head struct {
		Time   time.Time        `json:"time"`
		Inputs map[string]Input `json:"inputs"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return err
	}
	var res wqi.Result
	if err := json.Unmarshal(data, &res); err != nil {
		return err
	}
	*w = WQI{Time: head.Time, Result: res, Inputs: head.Inputs}
	return nil
}

// Same reports whether two fused indexes say the same: the same value (to the two decimals
// it is reported with), class and inputs (source and time of each). Ages alone do not make a new one.
func Same(a, b WQI) bool {
	if math.Abs(a.Result.WQI-b.Result.WQI) >= 0.005 || a.Result.Class != b.Result.Class || len(a.Inputs) != len(b.Inputs) {
		return false
	}
	for p, x := range a.Inputs {
		y, ok := b.Inputs[p]
		if !ok || x.Source != y.Source || !x.Time.Equal(y.Time) || x.Value != y.Value {
			return false
		}
	}
	return true
}
