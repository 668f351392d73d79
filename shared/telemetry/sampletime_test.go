package telemetry_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestParseSampleTime(t *testing.T) {
	want := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	for _, s := range []string{"2026-12-01T09:30+05:30", "2026-12-01T09:30:00+05:30", "2026-12-01T04:00:00Z",
		"2026-12-01T04:00Z", "2026-12-01T04:00:00.000Z"} {
		got, err := telemetry.ParseSampleTime(s)
		require.NoError(t, err, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{"", "2026-12-01", "2026-12-01T09:30", "2026-12-01 09:30:00", "01/12/2026 09:30", "yesterday"} {
		_, err := telemetry.ParseSampleTime(s)
		assert.ErrorIs(t, err, telemetry.ErrSampleTime, s)
	}
}
