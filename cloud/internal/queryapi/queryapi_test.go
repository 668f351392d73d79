package queryapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fusion"
	"github.com/purehealth/purehealth/cloud/internal/queryapi"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const station = "MH-PUNE-001"

var now = time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)

type env struct {
	store *store.Store
	srv   *httptest.Server
	dbURL string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, fusion.Policy{
		Priority: []string{"sensor", "api", "satellite", "model"},
		MaxAge:   map[string]time.Duration{"sensor": 2 * time.Hour, "api": 24 * time.Hour, "satellite": 14 * 24 * time.Hour, "model": 6 * time.Hour},
	})
}

func newEnvWith(t testing.TB, policy fusion.Policy) *env {
	t.Helper()
	st, dbURL := storetest.Open(t, store.Options{Now: func() time.Time { return now }})
	storetest.AddStation(t, st, station)
	mux := http.NewServeMux()
	queryapi.New(st, queryapi.Options{Now: func() time.Time { return now }, Fusion: policy}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{store: st, srv: srv, dbURL: dbURL}
}

func (e *env) ingest(t *testing.T, b *wire.Batch) {
	t.Helper()
	_, err := e.store.Ingest(t.Context(), b.Station, b)
	require.NoError(t, err)
}

// get fetches path and decodes the JSON answer into out; it returns the status.
func (e *env) get(t *testing.T, path string, out any) int {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	if out != nil {
		require.NoError(t, json.Unmarshal(data, out), "%s", data)
	}
	return resp.StatusCode
}

type readingsPage struct {
	Readings []struct {
		Seq     uint64    `json:"seq"`
		Time    time.Time `json:"time"`
		Param   string    `json:"param"`
		Value   float64   `json:"value"`
		Unit    string    `json:"unit"`
		Quality string    `json:"quality"`
		Source  string    `json:"source"`
		Sensor  string    `json:"sensor"`
		Avg     float64   `json:"avg"`
		Min     float64   `json:"min"`
		Max     float64   `json:"max"`
		Count   int64     `json:"count"`
	} `json:"readings"`
	Next string `json:"next"`
}

func TestReadingsPaginationVisitsEveryRowOnce(t *testing.T) {
	e := newEnv(t)
	// Equal times across seqs make the (time, seq) tiebreak matter.
	rs := storetest.Readings(1, 257, now.Add(-10*time.Hour), 2*time.Minute)
	for i := range rs {
		if i%5 == 1 {
			rs[i].Time = rs[i-1].Time
		}
	}
	e.ingest(t, storetest.Batch(station, rs[:150]))
	e.ingest(t, storetest.Batch(station, rs[100:]))

	for _, tc := range []struct {
		name  string
		query url.Values
		want  int
	}{
		{"all", url.Values{"limit": {"20"}}, 257},
		{"one parameter", url.Values{"limit": {"7"}, "param": {"DO"}}, countParam(rs, "do")},
		{"a window", url.Values{"limit": {"33"}, "from": {now.Add(-8 * time.Hour).Format(time.RFC3339)},
			"to": {now.Add(-3 * time.Hour).Format(time.RFC3339)}}, countWindow(rs, now.Add(-8*time.Hour), now.Add(-3*time.Hour))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[uint64]int{}
			var prev *time.Time
			var prevSeq uint64
			q := tc.query
			pages := 0
			for {
				var page readingsPage
				require.Equal(t, http.StatusOK, e.get(t, "/v1/stations/"+station+"/readings?"+q.Encode(), &page))
				pages++
				for _, r := range page.Readings {
					seen[r.Seq]++
					if prev != nil {
						assert.True(t, r.Time.Before(*prev) || r.Time.Equal(*prev) && r.Seq < prevSeq,
							"newest first: %v/%d after %v/%d", r.Time, r.Seq, *prev, prevSeq)
					}
					rt := r.Time
					prev, prevSeq = &rt, r.Seq
				}
				if page.Next == "" {
					break
				}
				require.Len(t, page.Readings, atoi(q.Get("limit")), "only a full page has a next cursor")
				q.Set("cursor", page.Next)
				require.Less(t, pages, 1000)
			}
			assert.Len(t, seen, tc.want)
			for seq, n := range seen {
				assert.Equal(t, 1, n, "seq %d seen %d times", seq, n)
			}
		})
	}

	t.Run("record shape", func(t *testing.T) {
		var page readingsPage
		require.Equal(t, http.StatusOK, e.get(t, "/v1/stations/"+station+"/readings?limit=1", &page))
		require.Len(t, page.Readings, 1)
		r := page.Readings[0]
		want := rs[len(rs)-1]
		assert.Equal(t, []any{want.Seq, want.Time, want.Param, want.Value, want.Unit, want.Quality, want.Source, want.Sensor},
			[]any{r.Seq, r.Time, r.Param, r.Value, r.Unit, r.Quality, r.Source, r.Sensor})
	})
}

func countParam(rs []wire.Reading, p string) (n int) {
	for _, r := range rs {
		if r.Param == p {
			n++
		}
	}
	return n
}

func countWindow(rs []wire.Reading, from, to time.Time) (n int) {
	for _, r := range rs {
		if !r.Time.Before(from) && r.Time.Before(to) {
			n++
		}
	}
	return n
}

func atoi(s string) int {
	var n int
	fmt.Sscanf(s, "%d", &n)
	return n
}

func TestBucketsMatchRawReadings(t *testing.T) {
	e := newEnv(t)
	rs := storetest.Readings(1, 600, now.Add(-50*time.Hour), 5*time.Minute+7*time.Second)
	for i := range rs {
		rs[i].Value += float64(i%17) * 0.37
	}
	e.ingest(t, storetest.Batch(station, rs[200:]))
	e.ingest(t, storetest.Batch(station, rs[:300]))

	for _, tc := range []struct {
		bucket string
		size   time.Duration
	}{{"1h", time.Hour}, {"1d", 24 * time.Hour}} {
		t.Run(tc.bucket, func(t *testing.T) {
			type key struct {
				t time.Time
				p string
			}
			type agg struct {
				sum, min, max float64
				n             int64
			}
			want := map[key]agg{}
			for _, r := range rs {
				if r.Quality == "bad" {
					continue
				}
				k := key{r.Time.Truncate(tc.size), r.Param}
				a, ok := want[k]
				if !ok {
					a.min, a.max = r.Value, r.Value
				}
				a.sum += r.Value
				a.min, a.max = min(a.min, r.Value), max(a.max, r.Value)
				a.n++
				want[k] = a
			}
			got := map[key]bool{}
			q := url.Values{"bucket": {tc.bucket}, "limit": {"13"}}
			for {
				var page readingsPage
				require.Equal(t, http.StatusOK, e.get(t, "/v1/stations/"+station+"/readings?"+q.Encode(), &page))
				for _, b := range page.Readings {
					k := key{b.Time, b.Param}
					require.False(t, got[k], "bucket %v %s twice", b.Time, b.Param)
					got[k] = true
					w, ok := want[k]
					require.True(t, ok, "unexpected bucket %v %s", b.Time, b.Param)
					assert.Equal(t, w.n, b.Count)
					assert.InEpsilon(t, w.sum/float64(w.n), b.Avg, 1e-9)
					assert.Equal(t, b.Avg, b.Value, "value repeats avg")
					assert.Equal(t, w.min, b.Min)
					assert.Equal(t, w.max, b.Max)
					assert.NotEmpty(t, b.Unit)
				}
				if page.Next == "" {
					break
				}
				q.Set("cursor", page.Next)
			}
			assert.Len(t, got, len(want))
		})
	}
}

func TestWQIHistoryAndCursor(t *testing.T) {
	e := newEnv(t)
	b := storetest.Batch(station, nil)
	for i := 1; i <= 25; i++ {
		b.WQI = append(b.WQI, storetest.WQI(uint64(i), now.Add(-time.Duration(i)*time.Minute), float64(40+i)))
	}
	e.ingest(t, b)
	type page struct {
		WQI  []wire.WQIPoint `json:"wqi"`
		Next string          `json:"next"`
	}
	var seqs []uint64
	q := url.Values{"limit": {"10"}}
	for {
		var p page
		require.Equal(t, http.StatusOK, e.get(t, "/v1/stations/"+station+"/wqi?"+q.Encode(), &p))
		for _, w := range p.WQI {
			seqs = append(seqs, w.Seq)
			assert.Equal(t, float64(40+w.Seq), w.WQI)
			assert.Equal(t, []string{"fc"}, w.Missing)
			assert.True(t, w.Partial)
			assert.Equal(t, 81.5, *w.DOSaturationPct)
		}
		if p.Next == "" {
			break
		}
		q.Set("cursor", p.Next)
	}
	want := make([]uint64, 25)
	for i := range want {
		want[i] = uint64(i + 1) // seq 1 is the newest
	}
	assert.Equal(t, want, seqs)
}

func TestAlertsListing(t *testing.T) {
	e := newEnv(t)
	storetest.AddStation(t, e.store, "MH-NASHIK-002")
	b := storetest.Batch(station, nil)
	for i := uint64(1); i <= 6; i++ {
		state, tr := "active", "opened"
		if i%3 == 0 {
			state, tr = "resolved", "resolved"
		}
		b.Alerts = append(b.Alerts, storetest.Alert(i, i, tr, state, now.Add(-time.Duration(i)*time.Hour)))
	}
	e.ingest(t, b)
	b2 := storetest.Batch("MH-NASHIK-002", nil)
	b2.Alerts = []wire.AlertEvent{storetest.Alert(1, 1, "opened", "active", now.Add(-90*time.Minute))}
	e.ingest(t, b2)

	type page struct {
		Alerts []map[string]any `json:"alerts"`
		Next   string           `json:"next"`
	}
	walk := func(q url.Values) []string {
		var ids []string
		for {
			var p page
			require.Equal(t, http.StatusOK, e.get(t, "/v1/alerts?"+q.Encode(), &p))
			for _, a := range p.Alerts {
				for _, k := range []string{"id", "station", "rule", "param", "severity", "state", "opened_at", "resolved_at", "message"} {
					assert.Contains(t, a, k, "alert JSON mirrors the agent's")
				}
				ids = append(ids, fmt.Sprintf("%s/%v", a["station"], a["id"]))
			}
			if p.Next == "" {
				return ids
			}
			q.Set("cursor", p.Next)
		}
	}
	assert.Equal(t, []string{"MH-PUNE-001/1", "MH-NASHIK-002/1", "MH-PUNE-001/2", "MH-PUNE-001/3", "MH-PUNE-001/4",
		"MH-PUNE-001/5", "MH-PUNE-001/6"}, walk(url.Values{"limit": {"2"}}), "newest opened first, all pages")
	assert.Equal(t, []string{"MH-PUNE-001/1", "MH-PUNE-001/2", "MH-PUNE-001/4", "MH-PUNE-001/5"},
		walk(url.Values{"station": {station}, "active": {"true"}, "limit": {"3"}}))
	assert.Equal(t, []string{"MH-PUNE-001/3", "MH-PUNE-001/6"}, walk(url.Values{"active": {"false"}}))
	assert.Equal(t, []string{"MH-PUNE-001/1", "MH-NASHIK-002/1", "MH-PUNE-001/2"},
		walk(url.Values{"since": {now.Add(-150 * time.Minute).Format(time.RFC3339)}}))
}

func TestStationsListingAndStation(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"MH-A", "MH-B", "MH-C", "MH-D"} {
		storetest.AddStation(t, e.store, id)
	}
	var ids []string
	q := url.Values{"limit": {"2"}}
	for {
		var p struct {
			Stations []store.Station `json:"stations"`
			Next     string          `json:"next"`
		}
		require.Equal(t, http.StatusOK, e.get(t, "/v1/stations?"+q.Encode(), &p))
		for _, s := range p.Stations {
			ids = append(ids, s.ID)
		}
		if p.Next == "" {
			break
		}
		q.Set("cursor", p.Next)
	}
	assert.Equal(t, []string{"MH-A", "MH-B", "MH-C", "MH-D", station}, ids)

	var st store.Station
	require.Equal(t, http.StatusOK, e.get(t, "/v1/stations/"+station, &st))
	assert.Equal(t, station, st.ID)
	var errBody wire.Error
	assert.Equal(t, http.StatusNotFound, e.get(t, "/v1/stations/MH-NONE-009", &errBody))
	assert.Equal(t, "id", errBody.Field)
	assert.Equal(t, http.StatusNotFound, e.get(t, "/v1/stations/MH-NONE-009/readings", &errBody))
}

func TestFusedStatus(t *testing.T) {
	e := newEnv(t)
	r := func(seq uint64, param, unit, source, quality string, ago time.Duration, v float64) wire.Reading {
		return wire.Reading{Seq: seq, Time: now.Add(-ago), Sensor: source + "-" + param, Param: param, Value: v,
			Unit: unit, Quality: quality, Source: source}
	}
	e.ingest(t, storetest.Batch(station, []wire.Reading{
		r(1, "ph", "pH", "sensor", "good", 30*time.Minute, 7.4), // fresh sensor: wins
		r(2, "ph", "pH", "api", "good", 5*time.Minute, 7.0),
		r(3, "do", "mg/L", "sensor", "good", 3*time.Hour, 6.0), // stale sensor
		r(4, "do", "mg/L", "api", "good", 20*time.Hour, 5.5),   // fresh api: wins
		r(5, "turbidity", "NTU", "sensor", "bad", time.Minute, 9999),
		r(6, "turbidity", "NTU", "satellite", "good", 6*24*time.Hour, 30), // bad sensor ignored
		r(7, "temp", "degC", "model", "good", 7*time.Hour, 25),            // too old for a model
	}))
	e.ingest(t, &wire.Batch{V: 1, Station: station, WQI: []wire.WQIPoint{storetest.WQI(1, now.Add(-time.Minute), 71.5)}})

	var st struct {
		Station string `json:"station"`
		Params  map[string]struct {
			Value      float64 `json:"value"`
			Source     string  `json:"source"`
			AgeSeconds float64 `json:"age_seconds"`
			Unit       string  `json:"unit"`
		} `json:"params"`
		WQI *wire.WQIPoint `json:"wqi"`
	}
	require.Equal(t, http.StatusOK, e.get(t, "/v1/stations/"+station+"/status", &st))
	assert.Equal(t, station, st.Station)
	got := map[string]string{}
	for p, v := range st.Params {
		got[p] = fmt.Sprintf("%s %v", v.Source, v.Value)
	}
	assert.Equal(t, map[string]string{"ph": "sensor 7.4", "do": "api 5.5", "turbidity": "satellite 30"}, got)
	assert.Equal(t, 1800.0, st.Params["ph"].AgeSeconds)
	assert.Equal(t, "mg/L", st.Params["do"].Unit)
	require.NotNil(t, st.WQI)
	assert.Equal(t, 71.5, st.WQI.WQI)
}

// token makes a cursor the way the API does: base64url of its JSON.
func token(js string) string { return base64.RawURLEncoding.EncodeToString([]byte(js)) }

func TestBadParametersAreNamed(t *testing.T) {
	e := newEnv(t)
	base := "/v1/stations/" + station
	tests := []struct{ path, field string }{
		{base + "/readings?param=mercury", "param"},
		{base + "/readings?from=yesterday", "from"},
		{base + "/readings?to=2025-13-01T00:00:00Z", "to"},
		{base + "/readings?from=2025-11-13T00:00:00Z&to=2025-11-12T00:00:00Z", "to"},
		{base + "/readings?bucket=5m", "bucket"},
		{base + "/readings?limit=0", "limit"},
		{base + "/readings?limit=abc", "limit"},
		{base + "/readings?limit=100000", "limit"},
		{base + "/readings?cursor=garbage", "cursor"},
		{base + "/readings?limit=1&limit=2", "limit"},
		{base + "/readings?colour=blue", "colour"},
		{base + "/wqi?from=1", "from"},
		{base + "/status?x=1", "x"},
		{"/v1/alerts?active=maybe", "active"},
		{"/v1/alerts?since=now", "since"},
		{"/v1/alerts?station='%3B%20DROP%20TABLE%20alerts%3B--", "station"},
		{"/v1/stations?cursor=" + url.QueryEscape("eyJrIjoicmF3In0"), "cursor"},
		{"/v1/stations/bad%20id", "id"},
		// Cursors whose fields the database cannot hold: they were a 500.
		{"/v1/stations?cursor=" + token(`{"k":"stations","st":"A\u0000"}`), "cursor"},
		{"/v1/alerts?cursor=" + token(`{"k":"alerts","t":"2026-01-01T00:00:00Z","st":"`+station+`","id":9223372036854775808}`), "cursor"},
		{base + "/readings?bucket=1h&cursor=" + token(`{"k":"1h","t":"2026-01-01T00:00:00Z","p":"do\u0000"}`), "cursor"},
		{base + "/readings?cursor=" + token(`{"k":"raw","t":"0000-01-01T00:00:00Z","s":1}`), "cursor"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var body wire.Error
			assert.Equal(t, http.StatusBadRequest, e.get(t, tc.path, &body))
			assert.Equal(t, tc.field, body.Field, body.Error)
			assert.NotEmpty(t, body.Error)
		})
	}

	t.Run("a cursor of another listing", func(t *testing.T) {
		e.ingest(t, storetest.Batch(station, storetest.Readings(1, 3, now.Add(-time.Hour), time.Minute)))
		var page readingsPage
		require.Equal(t, http.StatusOK, e.get(t, base+"/readings?limit=1", &page))
		require.NotEmpty(t, page.Next)
		var body wire.Error
		assert.Equal(t, http.StatusBadRequest, e.get(t, base+"/readings?bucket=1h&cursor="+page.Next, &body))
		assert.Equal(t, "cursor", body.Field)
	})
}
