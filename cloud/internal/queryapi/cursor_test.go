package queryapi

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2025, 11, 13, 12, 0, 0, 123456000, time.UTC)
	for _, c := range []cursor{
		{Kind: kindReadings, Time: at, Seq: 42},
		{Kind: kindReadings, Time: at, ID: 7}, // a reading from a lab, a government programme or a satellite
		{Kind: kindHourly, Time: at, Param: "do"},
		{Kind: kindDaily, Time: at, Param: "ph"},
		{Kind: kindWQI, Time: at, Seq: 1},
		{Kind: kindAlerts, Time: at, Station: "MH-PUNE-001", ID: 9},
		{Kind: kindStations, Station: "MH-PUNE-001"},
	} {
		got, err := decodeCursor(c.encode(), c.Kind)
		require.NoError(t, err, c.Kind)
		assert.Equal(t, c, *got)
		for _, other := range []string{kindReadings, kindHourly, kindAlerts, kindStations} {
			if other != c.Kind {
				_, err := decodeCursor(c.encode(), other)
				assert.Error(t, err, "a %s cursor must not pass as %s", c.Kind, other)
			}
		}
	}
}

func TestReadingsCursorIsOneRowKind(t *testing.T) {
	at := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	for _, c := range []cursor{{Kind: kindReadings, Time: at}, {Kind: kindReadings, Time: at, Seq: 3, ID: 4}} {
		_, err := decodeCursor(c.encode(), kindReadings)
		assert.Error(t, err, "%+v: a station's reading (seq) or an external one (id), exactly one", c)
	}
}

func FuzzDecodeCursor(f *testing.F) {
	at := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	f.Add(cursor{Kind: kindReadings, Time: at, Seq: 42}.encode(), kindReadings)
	f.Add(cursor{Kind: kindReadings, Time: at, ID: 7}.encode(), kindReadings) // an external reading
	f.Add(cursor{Kind: kindAlerts, Time: at, Station: "X", ID: 1}.encode(), kindAlerts)
	f.Add("eyJrIjoicmF3In0", kindReadings)
	f.Add("!!!", kindStations)
	f.Fuzz(func(t *testing.T, token, kind string) {
		c, err := decodeCursor(token, kind)
		if err != nil {
			return
		}
		// Whatever is accepted is complete for its listing and survives a round trip.
		require.Equal(t, kind, c.Kind)
		again, err := decodeCursor(c.encode(), kind)
		require.NoError(t, err)
		require.Equal(t, c.encode(), again.encode())
	})
}

func FuzzQueryParameters(f *testing.F) {
	f.Add("param=DO&from=2025-11-13T00:00:00Z&to=2025-11-14T00:00:00Z&bucket=1h&limit=10")
	f.Add("limit=-1&bucket=5m&active=maybe")
	f.Add("from=2025-11-13T00:00:00%2B05:30&since=x&station=MH-1")
	f.Add("format=csv&revisions=all&param=bod")
	f.Add("format=csv&limit=3&revisions=some")
	f.Add("source=manual,api,satellite&param=bod")
	f.Add("source=api,,lab")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q := newQuery(v, "param", "from", "to", "bucket", "limit", "cursor", "station", "active", "since", "revisions", "format", "source")
		param, limit := q.param(), q.limit()
		from, to := q.timeRange()
		bucket := q.bucket()
		q.cursor(bucket)
		q.station("station")
		q.boolean("active")
		q.time("since")
		q.revisions()
		csv := q.csv(bucket)
		sources := q.sources()
		if q.err != nil {
			require.NotEmpty(t, q.err.Field)
			return
		}
		require.True(t, limit >= 1 && limit <= maxLimit)
		require.True(t, from.IsZero() || to.IsZero() || to.After(from))
		require.Contains(t, []string{kindReadings, kindHourly, kindDaily}, bucket)
		require.True(t, !csv || bucket == kindReadings && v.Get("limit") == "" && v.Get("cursor") == "",
			"CSV streams raw readings, whole")
		for _, src := range sources {
			require.True(t, telemetry.Source(src).Valid(), "source %q", src)
		}
		require.Equal(t, len(sources), len(slices.Compact(slices.Sorted(slices.Values(sources)))), "no source twice")
		_ = param
	})
}
