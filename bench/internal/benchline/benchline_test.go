package benchline

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestString(t *testing.T) {
	tests := []struct {
		name string
		line Line
		want string
	}{
		{
			name: "throughput against a peer",
			line: Line{Name: "broker_vs_mosquitto", Ours: 7118.4, Peer: 16222.41, Unit: "msgs/s",
				Goal: Goal{AtLeast, 0.8}, PeerIs: "mosquitto 2.0.11, persistence false"},
			want: `BENCH broker_vs_mosquitto ours=7118 peer=16222 unit=msgs/s ratio=0.4388 goal=>=0.8 peer_is="mosquitto 2.0.11, persistence false"`,
		},
		{
			name: "memory against a budget",
			line: Line{Name: "agent_rss_200_sensors", Ours: 30.3456, Peer: 50, Unit: "MB",
				Goal: Goal{AtMost, 1}, PeerIs: "budget"},
			want: `BENCH agent_rss_200_sensors ours=30.35 peer=50 unit=MB ratio=0.6069 goal=<=1 peer_is="budget"`,
		},
		{
			name: "large ratio",
			line: Line{Name: "durable_qos1_vs_fsync", Ours: 15000, Peer: 280.5, Unit: "per_s",
				Goal: Goal{AtLeast, 50}, PeerIs: "fdatasync/s"},
			want: `BENCH durable_qos1_vs_fsync ours=15000 peer=280.5 unit=per_s ratio=53.48 goal=>=50 peer_is="fdatasync/s"`,
		},
		{
			name: "small numbers keep four digits",
			line: Line{Name: "x", Ours: 0.000123456, Peer: 1, Unit: "s", Goal: Goal{AtMost, 0.5}, PeerIs: "p"},
			want: `BENCH x ours=0.0001235 peer=1 unit=s ratio=0.0001235 goal=<=0.5 peer_is="p"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.line.Validate())
			assert.Equal(t, tt.want, tt.line.String())
		})
	}
}

func TestGoalMet(t *testing.T) {
	tests := []struct {
		name  string
		goal  Goal
		ratio float64
		want  bool
	}{
		{"at least, above", Goal{AtLeast, 0.8}, 0.81, true},
		{"at least, equal", Goal{AtLeast, 0.8}, 0.8, true},
		{"at least, below", Goal{AtLeast, 0.8}, 0.79, false},
		{"at most, below", Goal{AtMost, 1}, 0.6, true},
		{"at most, above", Goal{AtMost, 1}, 1.01, false},
		{"NaN never meets", Goal{AtLeast, 0}, math.NaN(), false},
		{"unknown op never meets", Goal{"==", 1}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.goal.Met(tt.ratio))
		})
	}
}

func TestValidate(t *testing.T) {
	good := Line{Name: "a_b", Ours: 1, Peer: 2, Unit: "msgs/s", Goal: Goal{AtLeast, 1}, PeerIs: "peer"}
	tests := []struct {
		name   string
		change func(*Line)
	}{
		{"name with space", func(l *Line) { l.Name = "a b" }},
		{"upper-case name", func(l *Line) { l.Name = "Broker" }},
		{"negative ours", func(l *Line) { l.Ours = -1 }},
		{"NaN ours", func(l *Line) { l.Ours = math.NaN() }},
		{"zero peer", func(l *Line) { l.Peer = 0 }},
		{"infinite peer", func(l *Line) { l.Peer = math.Inf(1) }},
		{"infinite ratio", func(l *Line) { l.Ours, l.Peer = 1e308, 1e-300 }},
		{"unit with space", func(l *Line) { l.Unit = "msgs / s" }},
		{"empty unit", func(l *Line) { l.Unit = "" }},
		{"bad op", func(l *Line) { l.Goal.Op = "<" }},
		{"quote in peer_is", func(l *Line) { l.PeerIs = `say "hi"` }},
		{"empty peer_is", func(l *Line) { l.PeerIs = "" }},
	}
	require.NoError(t, good.Validate())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := good
			tt.change(&l)
			assert.ErrorIs(t, l.Validate(), ErrInvalid)
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Line
		wantErr error
	}{
		{
			name: "contract example",
			in:   `BENCH broker_vs_mosquitto ours=7118 peer=16222 unit=msgs/s ratio=0.4388 goal=>=0.8 peer_is="mosquitto 2.0.11"` + "\n",
			want: Line{Name: "broker_vs_mosquitto", Ours: 7118, Peer: 16222, Unit: "msgs/s",
				Goal: Goal{AtLeast, 0.8}, PeerIs: "mosquitto 2.0.11"},
		},
		{
			name: "budget",
			in:   `BENCH agent_rss_200_sensors ours=30.35 peer=50 unit=MB ratio=0.607 goal=<=1 peer_is="budget"`,
			want: Line{Name: "agent_rss_200_sensors", Ours: 30.35, Peer: 50, Unit: "MB",
				Goal: Goal{AtMost, 1}, PeerIs: "budget"},
		},
		{name: "other output", in: "== run 1/3: agent", wantErr: ErrNotBench},
		{name: "fields out of order", in: `BENCH x peer=1 ours=1 unit=s ratio=1 goal=>=1 peer_is="p"`, wantErr: ErrInvalid},
		{name: "ratio that does not match", in: `BENCH x ours=1 peer=2 unit=s ratio=0.7 goal=>=1 peer_is="p"`, wantErr: ErrInvalid},
		{name: "not a number", in: `BENCH x ours=fast peer=2 unit=s ratio=0.5 goal=>=1 peer_is="p"`, wantErr: ErrInvalid},
		{name: "zero peer", in: `BENCH x ours=1 peer=0 unit=s ratio=NaN goal=>=1 peer_is="p"`, wantErr: ErrInvalid},
		{name: "missing goal op", in: `BENCH x ours=1 peer=2 unit=s ratio=0.5 goal=1 peer_is="p"`, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestRoundTrip checks that every valid line reads back as written, over many magnitudes.
func TestRoundTrip(t *testing.T) {
	for _, ours := range []float64{0, 0.00012345, 0.5, 1, 9.9996, 28.44, 999.96, 7231.4, 123456.7} {
		for _, peer := range []float64{0.0003, 1, 50, 280.5, 7232.9, 16222.4, 1e6} {
			l := Line{Name: "rt", Ours: ours, Peer: peer, Unit: "msgs/s", Goal: Goal{AtLeast, 0.8}, PeerIs: "p"}
			got, err := Parse(l.String())
			require.NoError(t, err, "line %s", l)
			assert.InEpsilon(t, 1, (got.Ours+1e-300)/(ours+1e-300), 0.0006, "ours in %s", l)
			assert.InEpsilon(t, peer, got.Peer, 0.0006, "peer in %s", l)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`BENCH broker_vs_mosquitto ours=7118 peer=16222 unit=msgs/s ratio=0.4388 goal=>=0.8 peer_is="mosquitto"`)
	f.Add(`BENCH agent_rss_200_sensors ours=30.35 peer=50 unit=MB ratio=0.607 goal=<=1 peer_is="budget"`)
	f.Add(`BENCH x ours=1e400 peer=NaN unit=s ratio=Inf goal=>=-0 peer_is=""`)
	f.Add("BENCH \x00")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		// Whatever parses is a valid line that writes back to something that parses again
		// to the same line, up to rounding.
		require.NoError(t, l.Validate())
		again, err := Parse(l.String())
		require.NoError(t, err, "re-parse of %q", l.String())
		assert.Equal(t, l.Name, again.Name)
		assert.Equal(t, l.Goal.Op, again.Goal.Op)
		assert.Equal(t, l.PeerIs, again.PeerIs)
	})
}
