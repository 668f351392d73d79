package payload

import (
	"strconv"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

func TestInternSharesAndCopies(t *testing.T) {
	b := []byte("mg/L")
	s := intern(b)
	b[0] = 'X' // the payload's buffer is reused for the next packet
	assert.Equal(t, "mg/L", s, "an interned string must not alias the bytes it came from")
	again := intern([]byte("mg/L"))
	assert.True(t, unsafe.StringData(s) == unsafe.StringData(again), "the same bytes give the same string")

	long := make([]byte, internMaxLen+1)
	for i := range long {
		long[i] = 'a'
	}
	l1, l2 := intern(long), intern(long)
	assert.Equal(t, string(long), l1)
	assert.True(t, unsafe.StringData(l1) != unsafe.StringData(l2), "a long string is never kept")
}

// Every connection decodes on its own goroutine: the table must give the right string
// whatever the others store meanwhile (run with -race).
func TestInternConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20000 {
				want := "sensor-" + strconv.Itoa((g*7919+i)%(internSlots*2))
				if got := intern([]byte(want)); got != want {
					t.Errorf("intern(%q) = %q", want, got)
					return
				}
			}
		})
	}
	wg.Wait()
}
