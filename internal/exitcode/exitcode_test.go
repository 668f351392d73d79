package exitcode

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOf(t *testing.T) {
	boom := errors.New("boom")
	assert.Equal(t, OK, Of(nil))
	assert.Equal(t, Runtime, Of(boom))
	assert.Equal(t, Startup, Of(AtStartup(boom)))
	assert.Equal(t, Startup, Of(fmt.Errorf("run: %w", AtStartup(boom))), "found through wrapping")
	assert.ErrorIs(t, AtStartup(boom), boom)
	assert.NoError(t, AtStartup(nil))
}
