package wsload

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIntField(t *testing.T) {
	msg := []byte(`{"type":"reading","id":12345,"station":"A","time":"2025-11-13T12:00:00Z","data":{"seq":7,"sent_ns":1763035200123456789}}`)
	tests := []struct {
		key    string
		want   int64
		wantOK bool
	}{
		{`"id":`, 12345, true},
		{`"sent_ns":`, 1763035200123456789, true},
		{`"seq":`, 7, true},
		{`"missing":`, 0, false},
		{`"station":`, 0, false}, // not a number
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, ok := intField(msg, tt.key)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestPercentile(t *testing.T) {
	var r Result
	assert.Zero(t, r.Percentile(0.99))
	for i := 1; i <= 100; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, r.Percentile(0.5))
	assert.Equal(t, 99*time.Millisecond, r.Percentile(0.99))
	assert.Equal(t, 100*time.Millisecond, r.Percentile(1))
}

func FuzzIntField(f *testing.F) {
	f.Add([]byte(`{"id":1,"data":{"sent_ns":2}}`), `"id":`)
	f.Add([]byte(`"id":-`), `"id":`)
	f.Add([]byte(`"id":99999999999999999999`), `"id":`)
	f.Fuzz(func(t *testing.T, msg []byte, key string) {
		_, ok := intField(msg, key)
		if ok {
			// What it read is a number right after the key.
			i := bytes.Index(msg, []byte(key))
			require.GreaterOrEqual(t, i, 0)
			next := msg[i+len(key)]
			assert.True(t, next == '-' || next >= '0' && next <= '9', "%q", next)
		}
	})
}
