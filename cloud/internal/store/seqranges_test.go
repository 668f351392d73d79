package store

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRunsOf(t *testing.T) {
	tests := []struct {
		name string
		seqs []int64
		want seqRanges
	}{
		{"none", nil, nil},
		{"one", []int64{7}, seqRanges{{7, 8}}},
		{"a run, shuffled, with repeats", []int64{3, 1, 2, 2, 4}, seqRanges{{1, 5}}},
		{"runs with holes", []int64{10, 1, 2, 5, 6, 7, 12}, seqRanges{{1, 3}, {5, 8}, {10, 11}, {12, 13}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, runsOf(tt.seqs))
		})
	}
}

func TestSeqRangesUnion(t *testing.T) {
	tests := []struct {
		name string
		a, b seqRanges
		want seqRanges
	}{
		{"into nothing", nil, seqRanges{{1, 101}}, seqRanges{{1, 101}}},
		{"adjacent ranges join", seqRanges{{1, 101}}, seqRanges{{101, 201}}, seqRanges{{1, 201}}},
		{"overlapping ranges join", seqRanges{{1, 101}}, seqRanges{{50, 150}}, seqRanges{{1, 150}}},
		{"a range inside", seqRanges{{1, 101}}, seqRanges{{10, 20}}, seqRanges{{1, 101}}},
		{"a hole stays", seqRanges{{1, 101}}, seqRanges{{200, 301}}, seqRanges{{1, 101}, {200, 301}}},
		{"a hole fills", seqRanges{{1, 101}, {200, 301}}, seqRanges{{101, 200}}, seqRanges{{1, 301}}},
		{"the live lane's range above the backlog", seqRanges{{1, 1001}, {5000, 5201}}, seqRanges{{1001, 2001}},
			seqRanges{{1, 2001}, {5000, 5201}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.a.union(tt.b))
		})
	}
}

// Past maxSeqRanges the lowest holes close: the set grows to cover more, never less.
func TestSeqRangesUnionClosesTheLowestHoles(t *testing.T) {
	var s seqRanges
	for i := range int64(maxSeqRanges + 5) {
		s = s.union(seqRanges{{i * 10, i*10 + 5}}) // a hole of 5 after every 5
	}
	assert.Len(t, s, maxSeqRanges)
	assert.Equal(t, seqRange{0, 5*10 + 5}, s[0], "the five lowest holes are closed")
	assert.Equal(t, seqRange{(maxSeqRanges + 4) * 10, (maxSeqRanges+4)*10 + 5}, s[len(s)-1])
	for i := range int64(maxSeqRanges + 5) {
		assert.True(t, s.contains(i*10+4), "seq %d was added", i*10+4)
	}
	assert.False(t, s.contains((maxSeqRanges+3)*10+7), "a high hole stays open")
}

func TestSeqRangesContains(t *testing.T) {
	s := seqRanges{{1, 3}, {5, 8}, {10, 11}}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		q := rng.Int64N(14) - 1
		want := (q >= 1 && q < 3) || (q >= 5 && q < 8) || q == 10
		assert.Equal(t, want, s.contains(q), "seq %d", q)
	}
	assert.False(t, seqRanges(nil).contains(1))
}

func TestSeqRangesMultirangeRoundTrip(t *testing.T) {
	s := seqRanges{{1, 3}, {5, 8}, {10, 11}}
	assert.Equal(t, s, seqRangesOf(s.multirange()))
	assert.Empty(t, seqRangesOf(seqRanges(nil).multirange()))
}
