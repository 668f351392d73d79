package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/pgtest"
)

// soakRiver is the station's week: diurnal cycles of the river at Sangam that cross
// class B's limits (pH 6.5–8.5, DO ≥ 5 mg/L, BOD ≤ 3 mg/L, FC ≤ 500 MPN/100mL; see
// shared/criteria) on most days, so that threshold and WQI alerts open and resolve. Each
// probe is a sensor of its own with its own MQTT connection. hour is the true time of day
// (the probes' clocks may be an hour off), day the day of the week.
var soakRiver = []struct {
	sensor, param, unit string
	model               func(hour float64, day int) float64
}{
	{"temp-1", "temp", "degC", func(h float64, d int) float64 { return 27 + 3*cycle(h, 15, d) }},
	// Photosynthesis by day, respiration by night: under 5 mg/L before dawn.
	{"do-1", "do", "mg/L", func(h float64, d int) float64 { return 6.2 + 1.8*cycle(h, 14, d) }},
	// Every third day an afternoon bloom pushes pH over 8.5.
	{"ph-1", "ph", "pH", func(h float64, d int) float64 {
		v := 7.6 + 0.5*cycle(h, 16, d)
		if d%3 == 2 {
			v += 0.6 * math.Exp(-(h-15)*(h-15)/8)
		}
		return v
	}},
	// Sewage load in the evening: BOD over 3 and FC over 500.
	{"bod-1", "bod", "mg/L", func(h float64, d int) float64 { return 2.4 + 0.9*cycle(h, 20, d) }},
	{"fc-1", "fc", "MPN/100mL", func(h float64, d int) float64 { return 300 + 260*cycle(h, 22, d) }},
	{"ec-1", "conductivity", "uS/cm", func(h float64, d int) float64 { return 450 + 60*cycle(h, 18, d) }},
}

// cycle is a daily wave peaking at hour peak, its amplitude varying a little from day to
// day.
func cycle(hour, peak float64, day int) float64 {
	return (1 + 0.15*math.Sin(float64(day))) * math.Cos(2*math.Pi*(hour-peak)/24)
}

// soakWindow is how many publishes each probe keeps in flight.
const soakWindow = 8

// soak is the state of TestSoak. Everything runs on the test's goroutine: the probes
// publish asynchronously (paho's goroutines, owned by the clients) and the faults run
// between two rounds of readings.
type soak struct {
	t        *testing.T
	rng      *rand.Rand
	db       *pgtest.Server
	c        *cloud
	a        *agent
	syncFile string
	up       *upstreams // the simulators of the cloud's upstream sources
	upstream soakUpstream

	weekStart time.Time
	cadence   time.Duration
	now       time.Duration // simulated time since weekStart
	offset    time.Duration // how far the probes' clocks are off (NTP steps move it)

	probes []*soakProbe
	sent   []*soakPublish // every publish, acknowledged or not

	// phase counts the agent's clock sync changes, each confirmed by the agent before the
	// week goes on: even, the agent trusts its clock; odd, it does not.
	phase int
	// life counts the agent's starts; a publish may fail only if the agent restarted
	// while it was in flight.
	life int
	// cloudRunning and dbRunning say whether ph-cloud and PostgreSQL run.
	cloudRunning, dbRunning bool

	outages, dbRestarts, agentRestarts, syncLosses, ntpSteps int
	backlogs                                                 []int // the agent's backlog when each outage ended
}

// soakProbe is one probe: a sensor, its parameter and its connection.
type soakProbe struct {
	sensor, param, unit string
	model               func(hour float64, day int) float64
	client              paho.Client
	flight              []*soakPublish // oldest first
	n                   int            // publishes so far
}

// soakPublish is one reading a probe published.
type soakPublish struct {
	probe *soakProbe
	value float64
	at    time.Time // the timestamp sent
	tok   paho.Token
	// phase and life when it was sent, and the phase when its outcome was known.
	phase, life, settled int
	acked                bool
}

// maxTag bounds the per-probe counter that makes every value unique.
const maxTag = 100000

// valueText is the value a probe publishes for the n-th time: the model's value with two
// decimals, followed by n in five more (7.41 → 7.4100042), so that every reading of a
// probe has a value of its own (its identity in the database) and the river stays what
// the model says to within 0.01.
func valueText(model float64, n int) string {
	return strconv.FormatFloat(model, 'f', 2, 64) + fmt.Sprintf("%05d", n)
}

// connectProbes connects every probe to the agent's broker, after settling what the
// previous connections had in flight.
func (s *soak) connectProbes() {
	if s.probes == nil {
		for _, r := range soakRiver {
			s.probes = append(s.probes, &soakProbe{sensor: r.sensor, param: r.param, unit: r.unit, model: r.model})
		}
		s.cloudRunning, s.dbRunning, s.life = true, true, 1
	}
	for _, p := range s.probes {
		s.settleAll(p)
		if p.client != nil {
			pahotest.Disconnect(p.client)
		}
		p.client = pahotest.Connect(s.t, s.a.Listen, p.sensor, guard)
	}
}

// publish sends the probe's reading for the current simulated time.
func (s *soak) publish(p *soakProbe) {
	t := s.t
	require.Less(t, p.n, maxTag, "probe %s ran out of unique values", p.sensor)
	hour := float64(s.now%(24*time.Hour)) / float64(time.Hour)
	text := valueText(p.model(hour, int(s.now/(24*time.Hour))), p.n)
	v, err := strconv.ParseFloat(text, 64)
	require.NoError(t, err, "probe %s value", p.sensor)
	p.n++
	ts := s.weekStart.Add(s.now + s.offset)
	payload := `{"value":` + text + `,"unit":"` + p.unit + `","timestamp":"` +
		ts.Format("2006-01-02T15:04:05.000Z07:00") + `","sensor":"` + p.sensor + `"}`
	pub := &soakPublish{probe: p, value: v, at: ts, phase: s.phase, life: s.life}
	pub.tok = p.client.Publish(s.a.Topic(p.param), 1, false, payload)
	p.flight = append(p.flight, pub)
	s.sent = append(s.sent, pub)
	if len(p.flight) > soakWindow {
		s.settle(p.flight[0])
		p.flight = p.flight[1:]
	}
}

// settle waits for a publish's outcome. A publish may fail only when the agent restarted
// while it was in flight; the value is then unknown (stored or not), never acknowledged.
func (s *soak) settle(pub *soakPublish) {
	t := s.t
	if !pub.tok.WaitTimeout(guard) {
		t.Fatalf("no PUBACK within %v for %s %v", guard, pub.probe.sensor, pub.value)
	}
	pub.settled = s.phase
	if err := pub.tok.Error(); err != nil {
		if pub.life == s.life {
			t.Errorf("publish %s %v failed while the agent kept running: %v", pub.probe.sensor, pub.value, err)
		}
		return
	}
	pub.acked = true
}

func (s *soak) settleAll(p *soakProbe) {
	for _, pub := range p.flight {
		s.settle(pub)
	}
	p.flight = p.flight[:0]
}

// run publishes the week, running each step when the simulated time reaches it, and
// then settles every publish. It leaves everything running, the clock synced.
func (s *soak) run(steps []soakStep) {
	t := s.t
	slices.SortStableFunc(steps, func(x, y soakStep) int { return int(x.at - y.at) })
	t.Logf("the week's faults:%s", describeSteps(steps))
	end := soakDays * 24 * time.Hour
	for s.now = 0; s.now < end; s.now += s.cadence {
		for len(steps) > 0 && steps[0].at <= s.now {
			begin := time.Now()
			steps[0].run(s)
			t.Logf("%s  %s (%v)", clockString(s.now), steps[0].what, time.Since(begin).Round(time.Millisecond))
			steps = steps[1:]
		}
		for _, p := range s.probes {
			s.publish(p)
		}
	}
	for _, st := range steps {
		st.run(s)
	}
	for _, p := range s.probes {
		s.settleAll(p)
	}
	require.True(t, s.cloudRunning && s.dbRunning && s.phase%2 == 0,
		"the week must end with ph-cloud and PostgreSQL up and the clock synced: every fault needs its end step")
}

// cloudDown stops ph-cloud, once the upstream sources that were failing have recovered
// (its /stats start from 0 again).
func (s *soak) cloudDown(kill bool) {
	s.upstreamRecovered()
	if kill {
		s.c.serve.Kill(s.t)
	} else {
		s.c.serve.Stop(s.t)
	}
	s.cloudRunning = false
	s.outages++
}

// cloudUp starts ph-cloud again once the agent has failed to reach it, noting the
// backlog the outage left.
func (s *soak) cloudUp() {
	q := s.a.waitQueue(s.t, "a failed attempt to reach the cloud while it is down",
		func(q queue) bool { return q.ConsecutiveFailures > 0 })
	s.backlogs = append(s.backlogs, q.Backlog)
	require.Positive(s.t, q.Backlog, "the agent should hold a backlog after hours of outage: %s", q)
	s.c.serve.Start(s.t)
	s.cloudRunning = true
}

// databaseDown stops PostgreSQL under ph-cloud, once the upstream sources that were
// failing have recovered (without the database, no round succeeds).
func (s *soak) databaseDown(mode string) {
	s.upstreamRecovered()
	require.NoError(s.t, s.db.Stop(mode), "stop PostgreSQL")
	s.dbRunning = false
	s.dbRestarts++
}

// databaseUp starts PostgreSQL again once ph-cloud has noticed it gone and refused the
// agent a batch (the readings published meanwhile wait at the agent).
func (s *soak) databaseUp() {
	if s.cloudRunning {
		s.c.waitHealth(s.t, 503, guard)
		s.a.waitQueue(s.t, "a failed attempt while the database is down",
			func(q queue) bool { return q.ConsecutiveFailures > 0 })
	}
	require.NoError(s.t, s.db.Start(), "start PostgreSQL")
	s.dbRunning = true
	if s.cloudRunning {
		s.c.waitHealth(s.t, 200, guard)
	}
}

// restartAgent stops the agent (SIGTERM, or SIGKILL with publishes in flight), optionally
// removes the clock sync marker while it is down, starts it and reconnects the probes.
func (s *soak) restartAgent(kill, loseSync bool) {
	if kill {
		s.a.Kill(s.t)
	} else {
		s.a.Stop(s.t)
	}
	if loseSync {
		require.NoError(s.t, os.Remove(s.syncFile), "remove the clock sync marker")
	}
	s.a.Start(s.t)
	s.life++
	s.agentRestarts++
	s.connectProbes()
}

// loseSync takes the agent's clock sync away and waits until the agent says it no longer
// trusts its clock.
func (s *soak) loseSync(reboot bool) {
	require.Zero(s.t, s.phase%2, "clock sync lost twice")
	if reboot {
		s.restartAgent(true, true)
	} else {
		require.NoError(s.t, os.Remove(s.syncFile), "remove the clock sync marker")
	}
	s.waitClock(false)
	s.phase++
	s.syncLosses++
}

// resync gives the running agent its clock sync back and waits until it trusts its
// clock again (it looks again every few seconds).
func (s *soak) resync() {
	require.Equal(s.t, 1, s.phase%2, "clock synced without having lost sync")
	// What was published without clock sync is settled first, so that its flags can be
	// checked however few readings the phase had.
	for _, p := range s.probes {
		s.settleAll(p)
	}
	require.NoError(s.t, os.WriteFile(s.syncFile, nil, 0o600), "restore the clock sync marker")
	s.waitClock(true)
	s.phase++
}

// waitClock polls `ph-agent status --json` until the agent's clock is trusted or not, as
// synced says.
func (s *soak) waitClock(synced bool) {
	t := s.t
	deadline := time.Now().Add(guard)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), guard)
		res, err := s.a.cli(ctx, "status", "--json")
		cancel()
		var st struct {
			Clock struct {
				Synced bool   `json:"synced"`
				Reason string `json:"reason"`
			} `json:"clock"`
		}
		if err == nil && res.Code == 0 && json.Unmarshal([]byte(res.Stdout), &st) == nil {
			if st.Clock.Synced == synced {
				return
			}
			last = fmt.Sprintf("synced %v (%s)", st.Clock.Synced, st.Clock.Reason)
		} else {
			last = fmt.Sprintf("status: %v %s", err, res.Stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the agent's clock: want synced %v within %v; last `ph-agent status --json`: %s", synced, guard, last)
}
