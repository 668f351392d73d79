package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pahotest"
)

// uniqueValues returns n conductivity values from first on, each a different integer, so
// that the values in the database say exactly which publishes arrived. They stay inside
// conductivity's physical range (0–200000 µS/cm).
func uniqueValues(first, n int) []float64 {
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = float64(first + i)
	}
	return vs
}

// stream publishes values one by one as readings of sensor on topic at QoS 1, keeping up to
// window publishes in flight and pausing pace between publishes (0: as fast as the
// acknowledgements come back). It returns the values that got their PUBACK, and stops at
// the first failure (the connection lost: the values in flight then are left out, whether
// or not the agent stored them) or when ctx ends. It does not touch a testing.T, so it may
// run on any goroutine.
func stream(ctx context.Context, c paho.Client, topic, sensor string, values []float64, window int, pace time.Duration) ([]float64, error) {
	type pending struct {
		v   float64
		tok paho.Token
	}
	var (
		acked  []float64
		flight []pending
	)
	settle := func(p pending) error {
		if !p.tok.WaitTimeout(guard) {
			return fmt.Errorf("no PUBACK within %v for value %v", guard, p.v)
		}
		if err := p.tok.Error(); err != nil {
			return fmt.Errorf("publish %v: %w", p.v, err)
		}
		acked = append(acked, p.v)
		return nil
	}
	var err error
	for _, v := range values {
		if ctx.Err() != nil {
			break
		}
		if len(flight) == window {
			if err = settle(flight[0]); err != nil {
				break
			}
			flight = flight[1:]
		}
		payload := `{"value":` + strconv.FormatFloat(v, 'f', -1, 64) + `,"sensor":"` + sensor + `"}`
		flight = append(flight, pending{v, c.Publish(topic, 1, false, payload)})
		if pace > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(pace):
			}
		}
	}
	for _, p := range flight {
		if serr := settle(p); serr != nil {
			err = cmp.Or(err, serr)
		}
	}
	return acked, err
}

// pubOptions shape a publishing run.
type pubOptions struct {
	Clients int           // MQTT connections, default 4
	Window  int           // publishes in flight per connection, default 8
	Pace    time.Duration // pause between one connection's publishes, default none
}

// publishing is a run of publishers in the background.
type publishing struct {
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	acked   [][]float64
	errs    []error
	running atomic.Int32
}

// startPublishing publishes values as conductivity readings of agent a over several
// connections (values dealt round-robin), in the background, until they are all sent or
// stop is called. Each connection is a sensor of its own: its values rise steadily, as a
// probe's may, while the connections run at their own paces; mixed into one sensor's
// history they would look like spikes and raise anomaly alerts.
func startPublishing(t *testing.T, a *agent, values []float64, o pubOptions) *publishing {
	t.Helper()
	o.Clients, o.Window = cmp.Or(o.Clients, 4), cmp.Or(o.Window, 8)
	ctx, cancel := context.WithCancel(t.Context())
	p := &publishing{cancel: cancel, acked: make([][]float64, o.Clients), errs: make([]error, o.Clients)}
	t.Cleanup(p.stop)
	topic := a.Topic("conductivity")
	for i := range o.Clients {
		c := pahotest.Connect(t, a.Listen, "sys", guard)
		var mine []float64
		for j := i; j < len(values); j += o.Clients {
			mine = append(mine, values[j])
		}
		p.running.Add(1)
		p.wg.Go(func() {
			defer p.running.Add(-1)
			defer pahotest.Disconnect(c)
			p.acked[i], p.errs[i] = stream(ctx, c, topic, fmt.Sprintf("ec-%d", i+1), mine, o.Window, o.Pace)
		})
	}
	return p
}

// stop ends the publishers early (idempotent).
func (p *publishing) stop() {
	p.cancel()
	p.wg.Wait()
}

// wait waits for the publishers and returns every value acknowledged, with the error of
// each connection that failed.
func (p *publishing) wait() ([]float64, error) {
	p.wg.Wait()
	p.cancel()
	var all []float64
	for _, a := range p.acked {
		all = append(all, a...)
	}
	return all, errors.Join(p.errs...)
}

// mustWait waits for the publishers and requires every publish to have been acknowledged.
func (p *publishing) mustWait(t *testing.T, want int) []float64 {
	t.Helper()
	acked, err := p.wait()
	require.NoError(t, err, "publishing failed")
	require.Len(t, acked, want, "every publish should have been acknowledged")
	return acked
}

// publishAll publishes values (see startPublishing) and waits until each is acknowledged.
func publishAll(t *testing.T, a *agent, values []float64, o pubOptions) []float64 {
	t.Helper()
	return startPublishing(t, a, values, o).mustWait(t, len(values))
}

// arrayItem is one reading in a purehealth/<station>/readings array.
type arrayItem struct {
	Param  string  `json:"param"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Sensor string  `json:"sensor"`
}

// publishBulk publishes values as conductivity readings in arrays of per on the readings
// topic: many readings for one PUBACK, to build a large backlog quickly. It requires every
// array to be acknowledged.
func publishBulk(t *testing.T, a *agent, values []float64, per int) {
	t.Helper()
	c := pahotest.Connect(t, a.Listen, "sys", guard)
	defer pahotest.Disconnect(c)
	var toks []paho.Token
	for i := 0; i < len(values); i += per {
		items := make([]arrayItem, 0, per)
		for _, v := range values[i:min(i+per, len(values))] {
			items = append(items, arrayItem{Param: "conductivity", Value: v, Unit: "uS/cm", Sensor: "ec-bulk"})
		}
		b, err := json.Marshal(items)
		require.NoError(t, err)
		toks = append(toks, c.Publish(a.Topic("readings"), 1, false, b))
		if len(toks) == 8 { // a window of arrays in flight
			require.True(t, toks[0].WaitTimeout(guard), "no PUBACK for a readings array")
			require.NoError(t, toks[0].Error(), "publish a readings array")
			toks = toks[1:]
		}
	}
	for _, tok := range toks {
		require.True(t, tok.WaitTimeout(guard), "no PUBACK for a readings array")
		require.NoError(t, tok.Error(), "publish a readings array")
	}
}

// finished reports whether every publisher has returned.
func (p *publishing) finished() bool { return p.running.Load() == 0 }
