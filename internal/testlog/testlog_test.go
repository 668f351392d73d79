package testlog

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBufferConcurrentWriters(t *testing.T) {
	var b Buffer
	assert.Empty(t, b.String(), "the zero value is empty")
	log := slog.New(slog.NewTextHandler(&b, nil))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				log.Info("line", "writer", i, "n", j)
				_ = b.String() // reading while others write is safe
			}
		})
	}
	wg.Wait()
	got := b.String()
	assert.Equal(t, 8*50, strings.Count(got, "\n"), "every line kept whole")
	for i := range 8 {
		assert.Contains(t, got, fmt.Sprintf("writer=%d n=49\n", i))
	}
}
