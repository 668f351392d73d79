package alertrule

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// parse turns "VVHCC" into verdicts: V violating, H holding, C clear.
func parse(s string) []Verdict {
	out := make([]Verdict, 0, len(s))
	for _, c := range s {
		switch c {
		case 'V':
			out = append(out, Violating)
		case 'H':
			out = append(out, Holding)
		case 'C':
			out = append(out, Clear)
		}
	}
	return out
}

// render turns transitions into "..O..R": O open, R resolve, . none.
func render(ts []Transition) string {
	var b strings.Builder
	for _, t := range ts {
		switch t {
		case Open:
			b.WriteByte('O')
		case Resolve:
			b.WriteByte('R')
		default:
			b.WriteByte('.')
		}
	}
	return b.String()
}

func TestTrackerHysteresis(t *testing.T) {
	tests := []struct {
		name     string
		policy   Policy
		verdicts string
		want     string
	}{
		{"opens once however long it lasts", Policy{}, "VVVVV", "O...."},
		{"resolves on first clear with ClearAfter 1", Policy{}, "VC", "OR"},
		{"needs consecutive clears", Policy{ClearAfter: 3}, "VCCC", "O..R"},
		{"holding resets the clear count", Policy{ClearAfter: 2}, "VCHCHCC", "O.....R"},
		{"violation resets the clear count", Policy{ClearAfter: 2}, "VCVCC", "O...R"},
		{"hovering inside the deadband never flaps", Policy{ClearAfter: 2}, "VHVHVHVH", "O......."},
		{"open needs consecutive violations", Policy{OpenAfter: 3}, "VVCVVV", ".....O"},
		{"holding before open resets violations", Policy{OpenAfter: 2}, "VHVV", "...O"},
		{"clear without history is nothing", Policy{}, "CCC", "..."},
		{"reopens after a full resolve", Policy{ClearAfter: 1}, "VCV", "ORO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker()
			var got []Transition
			for _, v := range parse(tt.verdicts) {
				got = append(got, tr.Observe("k", v, tt.policy))
			}
			assert.Equal(t, tt.want, render(got), "verdicts %s", tt.verdicts)
		})
	}
}

func TestTrackerKeysAreIndependent(t *testing.T) {
	tr := NewTracker()
	assert.Equal(t, Open, tr.Observe("a", Violating, Policy{}))
	assert.Equal(t, Open, tr.Observe("b", Violating, Policy{}))
	assert.Equal(t, Resolve, tr.Observe("a", Clear, Policy{}))
	assert.True(t, tr.IsOpen("b"))
	assert.False(t, tr.IsOpen("a"))
}

func TestRestoreResolvesWithoutReopening(t *testing.T) {
	tr := NewTracker()
	tr.Restore("k")
	assert.Equal(t, None, tr.Observe("k", Violating, Policy{}), "a restored alert must not open twice")
	assert.Equal(t, Resolve, tr.Observe("k", Clear, Policy{}))
	tr.Restore("j")
	tr.Forget("j")
	assert.False(t, tr.IsOpen("j"))
}

func TestBand(t *testing.T) {
	tests := []struct {
		name          string
		v, limit, mar float64
		isMax         bool
		want          Verdict
	}{
		{"max: above", 3.1, 3, 0.15, true, Violating},
		{"max: at limit is fine", 3, 3, 0.15, true, Holding},
		{"max: inside deadband", 2.9, 3, 0.15, true, Holding},
		{"max: at margin edge", 2.85, 3, 0.15, true, Clear},
		{"max: well below", 1, 3, 0.15, true, Clear},
		{"min: below", 4.9, 5, 0.25, false, Violating},
		{"min: at limit", 5, 5, 0.25, false, Holding},
		{"min: at margin edge", 5.25, 5, 0.25, false, Clear},
		{"zero margin: at limit clears", 5, 5, 0, false, Clear},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Band(tt.v, tt.limit, tt.mar, tt.isMax))
		})
	}
}

// Tracks is false exactly where a Clear verdict changes nothing.
func TestTracks(t *testing.T) {
	tr := NewTracker()
	p := Policy{OpenAfter: 2, ClearAfter: 2}
	assert.Equal(t, None, tr.Observe("k", Clear, p))
	assert.False(t, tr.Tracks("k"), "a clear verdict for a condition that never fired is not remembered")
	tr.Observe("k", Holding, p)
	assert.True(t, tr.Tracks("k"))
	tr.Observe("k", Violating, p)
	assert.Equal(t, Open, tr.Observe("k", Violating, p))
	assert.True(t, tr.Tracks("k"))
	tr.Forget("k")
	assert.False(t, tr.Tracks("k"))
	tr.Restore("r")
	assert.True(t, tr.Tracks("r"))
}
