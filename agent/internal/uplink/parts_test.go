package uplink

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestRangeSet(t *testing.T) {
	tests := []struct {
		name   string
		adds   [][2]uint64
		want   []seqRange
		cursor uint64
		prefix uint64
	}{
		{"empty", nil, nil, 0, 0},
		{"one", [][2]uint64{{5, 9}}, []seqRange{{5, 9}}, 0, 0},
		{"touching at the cursor", [][2]uint64{{5, 9}}, []seqRange{{5, 9}}, 4, 9},
		{"overlapping the cursor", [][2]uint64{{5, 9}}, []seqRange{{5, 9}}, 6, 9},
		{"merge adjacent", [][2]uint64{{5, 9}, {10, 12}}, []seqRange{{5, 12}}, 4, 12},
		{"merge overlapping, out of order", [][2]uint64{{20, 30}, {5, 9}, {8, 21}}, []seqRange{{5, 30}}, 0, 0},
		{"keep holes", [][2]uint64{{1, 3}, {5, 6}, {9, 9}}, []seqRange{{1, 3}, {5, 6}, {9, 9}}, 0, 3},
		{"fill a hole", [][2]uint64{{1, 3}, {5, 6}, {4, 4}}, []seqRange{{1, 6}}, 0, 6},
		{"swallow several", [][2]uint64{{2, 2}, {4, 4}, {6, 6}, {1, 10}}, []seqRange{{1, 10}}, 0, 10},
		{"below the cursor ignored by prefix", [][2]uint64{{1, 3}, {8, 9}}, []seqRange{{1, 3}, {8, 9}}, 5, 5},
		{"empty range ignored", [][2]uint64{{5, 4}}, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s rangeSet
			for _, a := range tt.adds {
				s.add(a[0], a[1])
			}
			assert.Equal(t, tt.want, s.rs)
			assert.Equal(t, tt.prefix, s.prefix(tt.cursor))
			for _, r := range tt.want {
				assert.True(t, s.contains(r.lo) && s.contains(r.hi))
				assert.False(t, s.contains(r.hi+1) && !s.contains(r.hi+1))
			}
		})
	}

	var s rangeSet
	s.add(1, 5)
	s.add(8, 10)
	assert.Equal(t, uint64(8), s.count())
	s.trim(3)
	assert.Equal(t, []seqRange{{4, 5}, {8, 10}}, s.rs)
	s.trim(9)
	assert.Equal(t, []seqRange{{10, 10}}, s.rs)
	s.trim(10)
	assert.Empty(t, s.rs)
	assert.False(t, s.contains(10))

	// find searches: every seq of a set with many holes, in and out.
	var h rangeSet
	for lo := uint64(10); lo < 1000; lo += 10 {
		h.add(lo, lo+4)
	}
	for seq := uint64(0); seq < 1010; seq++ {
		r, ok := h.find(seq)
		in := seq >= 10 && seq%10 < 5 && seq < 1000
		assert.Equal(t, in, ok, "seq %d", seq)
		if in {
			assert.Equal(t, seqRange{seq - seq%10, seq - seq%10 + 4}, r, "range of seq %d", seq)
		}
	}
}

func TestClassifyField(t *testing.T) {
	tests := []struct {
		field string
		kind  fieldKind
		st    spool.Stream
		idx   int
	}{
		{"", fieldUnnamed, 0, 0},
		{"readings[3].param", fieldNamed, spool.Readings, 3},
		{"alerts[0].rule", fieldNamed, spool.Alerts, 0},
		{"wqi[12]", fieldNamed, spool.WQI, 12},
		{"wqi[12].missing[3]", fieldNamed, spool.WQI, 12},
		{"readings", fieldUnnamed, 0, 0},
		{"readings.value", fieldUnnamed, 0, 0},
		{"readings[x].value", fieldUnnamed, 0, 0},
		{"readings[-1]", fieldUnnamed, 0, 0},
		{"v", fieldBatch, 0, 0},
		{"station", fieldBatch, 0, 0},
		{"agent", fieldBatch, 0, 0},
		{"readingsx", fieldBatch, 0, 0},
	}
	for _, tt := range tests {
		kind, st, idx := classifyField(tt.field)
		assert.Equal(t, tt.kind, kind, "%q", tt.field)
		assert.Equal(t, tt.st, st, "%q", tt.field)
		assert.Equal(t, tt.idx, idx, "%q", tt.field)
	}

	items := []item{{st: spool.Alerts, seq: 7}, {st: spool.WQI, seq: 2}, {st: spool.Readings, seq: 10},
		{st: spool.Readings, seq: 11}}
	assert.Equal(t, 3, position(items, spool.Readings, 1))
	assert.Equal(t, 0, position(items, spool.Alerts, 0))
	assert.Equal(t, -1, position(items, spool.Readings, 2))
}

func TestDecodeAckAndConfirm(t *testing.T) {
	sent := func(r, a, w uint64) (s [numStreams + 1]uint64) {
		s[spool.Readings], s[spool.Alerts], s[spool.WQI] = r, a, w
		return s
	}
	tests := []struct {
		name    string
		body    string
		sent    [numStreams + 1]uint64
		wantErr bool
	}{
		{"contract", `{"acked_seq": 10, "acked": {"readings": 10, "alerts": 2, "wqi": 0}}`, sent(10, 2, 0), false},
		{"readings only, old shape", `{"acked_seq": 10}`, sent(10, 0, 0), false},
		{"unknown keys welcome", `{"acked_seq": 10, "acked": {"readings": 10}, "stored": 4}`, sent(10, 0, 0), false},
		{"empty batch", `{"acked_seq": 0, "acked": {"readings": 0, "alerts": 0, "wqi": 0}}`, sent(0, 0, 0), false},
		{"alerts missing", `{"acked_seq": 10}`, sent(10, 2, 0), true},
		{"lower", `{"acked_seq": 9, "acked": {"readings": 9}}`, sent(10, 0, 0), true},
		{"higher", `{"acked_seq": 11, "acked": {"readings": 11}}`, sent(10, 0, 0), true},
		{"wqi wrong", `{"acked_seq": 10, "acked": {"readings": 10, "wqi": 1}}`, sent(10, 0, 3), true},
		{"acked_seq disagrees", `{"acked_seq": 10, "acked": {"readings": 9}}`, sent(10, 0, 0), true},
		{"no acked_seq", `{"acked": {"readings": 10}}`, sent(10, 0, 0), true},
		{"null", `null`, sent(0, 0, 0), true},
		{"array", `[10]`, sent(0, 0, 0), true},
		{"negative", `{"acked_seq": -1}`, sent(0, 0, 0), true},
		{"fraction", `{"acked_seq": 1.5}`, sent(0, 0, 0), true},
		{"string", `{"acked_seq": "10"}`, sent(0, 0, 0), true},
		{"trailing", `{"acked_seq": 10} x`, sent(10, 0, 0), true},
		{"two objects", `{"acked_seq": 10}{"acked_seq": 10}`, sent(10, 0, 0), true},
		{"html", `<html>ok</html>`, sent(0, 0, 0), true},
		{"empty", ``, sent(0, 0, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack, err := decodeAck([]byte(tt.body))
			if err == nil {
				err = confirm(ack, tt.sent)
			}
			if tt.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

// FuzzDecodeAck: an answer body never panics the decoder, and an answer accepted for a
// batch acknowledges exactly the highest seq of each stream the batch held.
func FuzzDecodeAck(f *testing.F) {
	for _, s := range []string{
		`{"acked_seq": 10, "acked": {"readings": 10, "alerts": 2, "wqi": 1}}`, `{"acked_seq": 0}`,
		`{"acked_seq": 18446744073709551615}`, `{"acked_seq": 1, "acked": null}`, `null`, `{}`,
		`{"acked_seq": 1}garbage`, "\x1f\x8b\x08", `{"acked_seq": 1e2}`, `{"acked":{"readings":-1}}`,
	} {
		f.Add([]byte(s), uint64(10), uint64(2), uint64(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, r, a, w uint64) {
		ack, err := decodeAck(body)
		if err != nil {
			return
		}
		if v, ok := ack.Acked["readings"]; ok {
			require.Equal(t, ack.AckedSeq, v, "acked_seq repeats acked.readings")
		}
		var sent [numStreams + 1]uint64
		sent[spool.Readings], sent[spool.Alerts], sent[spool.WQI] = r, a, w
		if confirm(ack, sent) != nil {
			return
		}
		for _, st := range streams {
			if sent[st] == 0 {
				continue
			}
			got, ok := ack.Acked[st.String()]
			if st == spool.Readings && !ok {
				got = ack.AckedSeq
			}
			require.Equal(t, sent[st], got, "%s acknowledged exactly", st)
		}
		// What was accepted survives a round trip.
		raw, err := json.Marshal(ack)
		require.NoError(t, err)
		again, err := decodeAck(raw)
		require.NoError(t, err)
		require.Equal(t, ack.AckedSeq, again.AckedSeq)
	})
}

func TestRefusalBody(t *testing.T) {
	assert.Equal(t, wire.Error{Error: "bad", Field: "readings[1].unit"},
		decodeRefusal([]byte(`{"error":"bad","field":"readings[1].unit"}`), 400))
	assert.Equal(t, wire.Error{Error: "upstream timed out"}, decodeRefusal([]byte("upstream timed out\n"), 504))
	assert.Equal(t, wire.Error{Error: "Bad Gateway"}, decodeRefusal([]byte("\x00\x01\x02"), 502))
	assert.Equal(t, wire.Error{Error: "Service Unavailable"}, decodeRefusal(nil, 503))
}
