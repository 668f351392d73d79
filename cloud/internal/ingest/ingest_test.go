package ingest_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/ingest"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const station = "MH-PUNE-001"

type env struct {
	store *store.Store
	url   string // database
	srv   *httptest.Server
	token string
}

func newEnv(t *testing.T, opts ingest.Options) *env {
	t.Helper()
	st, url := storetest.Open(t, store.Options{})
	return serve(t, st, url, opts)
}

func serve(t testing.TB, st *store.Store, url string, opts ingest.Options) *env {
	t.Helper()
	if opts.RatePerStation == 0 {
		opts.RatePerStation, opts.Burst = 1000, 1000
	}
	srv := httptest.NewServer(ingest.New(st, opts))
	t.Cleanup(srv.Close)
	return &env{store: st, url: url, srv: srv, token: storetest.AddStation(t, st, station)}
}

type reply struct {
	status int
	header http.Header
	ack    wire.Ack
	err    wire.Error
}

func gz(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func encode(t testing.TB, b *wire.Batch) []byte {
	t.Helper()
	body, err := wire.Encode(b)
	require.NoError(t, err)
	return body
}

func (e *env) request(t testing.TB, token string, body []byte, gzipped bool) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/ingest", bytes.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func do(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{status: resp.StatusCode, header: resp.Header}
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(data, &r.ack), "%s", data)
	} else {
		require.NoError(t, json.Unmarshal(data, &r.err), "%s", data)
		assert.NotEmpty(t, r.err.Error, "an error body says what is wrong")
	}
	return r
}

func (e *env) post(t testing.TB, b *wire.Batch) reply {
	t.Helper()
	return do(t, e.request(t, e.token, encode(t, b), true))
}

func (e *env) count(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), e.url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int64
	require.NoError(t, conn.QueryRow(t.Context(), sql, args...).Scan(&n))
	return n
}

func TestExactlyOnce(t *testing.T) {
	e := newEnv(t, ingest.Options{})
	t0 := time.Now().Add(-time.Hour)
	all := storetest.Readings(1, 400, t0, time.Second)
	withEvents := func(rs []wire.Reading, alertSeqs ...uint64) *wire.Batch {
		b := storetest.Batch(station, rs)
		for _, s := range alertSeqs {
			b.Alerts = append(b.Alerts, storetest.Alert(s, s, "opened", "active", t0))
			b.WQI = append(b.WQI, storetest.WQI(s, t0.Add(time.Duration(s)*time.Minute), 70))
		}
		return b
	}
	tests := []struct {
		name          string
		batch         *wire.Batch
		wantAck       wire.Ack
		wantReadings  int64
		wantAlerts    int64
		wantWQIPoints int64
	}{
		{"first", withEvents(all[:100], 1, 2), ack(100, 2, 2), 100, 2, 2},
		{"duplicate", withEvents(all[:100], 1, 2), ack(100, 2, 2), 100, 2, 2},
		{"overlapping", withEvents(all[50:250], 2, 3), ack(250, 3, 3), 250, 3, 3},
		{"replay of an old batch", withEvents(all[:10], 1), ack(10, 1, 1), 250, 3, 3},
		{"readings only", withEvents(all[250:300]), ack(300, 0, 0), 300, 3, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, tc.batch)
			require.Equal(t, http.StatusOK, r.status, "%+v", r.err)
			assert.Equal(t, tc.wantAck, r.ack)
			assert.Equal(t, tc.wantReadings, e.count(t, `SELECT count(*) FROM measurements`))
			assert.Equal(t, tc.wantAlerts, e.count(t, `SELECT count(*) FROM alert_events`))
			assert.Equal(t, tc.wantWQIPoints, e.count(t, `SELECT count(*) FROM wqi_readings`))
		})
	}

	t.Run("committed but the answer was lost", func(t *testing.T) {
		b := withEvents(all[300:400], 4)
		req := e.request(t, e.token, encode(t, b), true)
		// Write the whole request on a raw connection and hang up without reading the
		// answer, as an agent whose uplink dropped at the wrong moment.
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		require.NoError(t, err)
		require.NoError(t, req.Write(conn))
		require.NoError(t, conn.Close())
		require.Eventually(t, func() bool { return e.count(t, `SELECT count(*) FROM measurements`) == 400 },
			10*time.Second, 20*time.Millisecond, "the server finishes a batch whose client went away")

		r := e.post(t, b) // the agent resends: it never saw an ack
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, ack(400, 4, 4), r.ack)
		assert.Equal(t, int64(400), e.count(t, `SELECT count(*) FROM measurements`), "the resend adds no rows")
		assert.Equal(t, int64(400), e.count(t, `SELECT count(DISTINCT (station_id, seq)) FROM measurements`))
		assert.Equal(t, int64(4), e.count(t, `SELECT count(*) FROM alert_events`))
	})

	t.Run("plain JSON is accepted too", func(t *testing.T) {
		data, err := json.Marshal(storetest.Batch(station, all[:5]))
		require.NoError(t, err)
		r := do(t, e.request(t, e.token, data, false))
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, uint64(5), r.ack.AckedSeq)
	})
}

func ack(readings, alerts, wqi uint64) wire.Ack {
	return wire.Ack{AckedSeq: readings, Acked: map[string]uint64{"readings": readings, "alerts": alerts, "wqi": wqi}}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, ingest.Options{})
	otherToken := storetest.AddStation(t, e.store, "MH-NASHIK-002")
	batch := storetest.Batch(station, storetest.Readings(1, 3, time.Now().Add(-time.Minute), time.Second))
	body := encode(t, batch)

	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"not bearer", "Basic " + e.token, http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"wrong token", "Bearer pht_" + strings.Repeat("A", 43), http.StatusUnauthorized},
		{"token with a typo", "Bearer " + e.token[:len(e.token)-1] + "x", http.StatusUnauthorized},
		{"SQL in the token", "Bearer ' OR '1'='1", http.StatusUnauthorized},
		{"another station's token", "Bearer " + otherToken, http.StatusForbidden},
		{"lower-case scheme", "bearer " + e.token, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := e.request(t, "", body, true)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			r := do(t, req)
			assert.Equal(t, tc.want, r.status, "%+v", r.err)
			if tc.want == http.StatusUnauthorized {
				assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
			}
			if tc.want == http.StatusForbidden {
				assert.Equal(t, "station", r.err.Field)
			}
		})
	}
	assert.Equal(t, int64(3), e.count(t, `SELECT count(*) FROM measurements`), "only the good request stored rows")

	t.Run("a rotated token stops working at once", func(t *testing.T) {
		fresh, err := e.store.RotateToken(t.Context(), station)
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, do(t, e.request(t, e.token, body, true)).status)
		assert.Equal(t, http.StatusOK, do(t, e.request(t, fresh, body, true)).status)
	})
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, ingest.Options{})
	good := storetest.Batch(station, storetest.Readings(1, 3, time.Now().Add(-time.Minute), time.Second))
	jsonOf := func(b *wire.Batch) []byte {
		data, err := json.Marshal(b)
		require.NoError(t, err)
		return data
	}
	badParam := storetest.Batch(station, storetest.Readings(1, 3, time.Now(), time.Second))
	badParam.Readings[2].Param = "mercury"
	v2 := jsonOf(good)
	v2 = bytes.Replace(v2, []byte(`"v":1`), []byte(`"v":2`), 1)
	nul := storetest.Batch(station, storetest.Readings(1, 3, time.Now(), time.Second))
	nul.Readings[1].Sensor = "probe\x00"
	// Small on the wire, over the limit once inflated: gzip members of 1 MiB of "A"
	// each, concatenated (a gzip reader reads them as one stream).
	mib := bytes.Repeat([]byte("A"), 1<<20)
	bomb := gz(t, append([]byte(`{"v":1,"station":"`+station+`","agent":"`), mib...))
	member := gz(t, mib)
	for range wire.MaxDecompressedBytes >> 20 {
		bomb = append(bomb, member...)
	}
	require.Less(t, len(bomb), wire.MaxCompressedBytes)

	tests := []struct {
		name      string
		req       func() *http.Request
		want      int
		wantField string
		wantInMsg string
	}{
		{"malformed JSON", func() *http.Request { return e.request(t, e.token, gz(t, []byte(`{"v":1,`)), true) },
			http.StatusBadRequest, "", "malformed"},
		{"not gzip although it says so", func() *http.Request { return e.request(t, e.token, jsonOf(good), true) },
			http.StatusBadRequest, "", "gzip"},
		{"a bad field is named", func() *http.Request { return e.request(t, e.token, encode(t, badParam), true) },
			http.StatusBadRequest, "readings[2].param", "mercury"},
		{"version 2", func() *http.Request { return e.request(t, e.token, gz(t, v2), true) },
			http.StatusBadRequest, "v", "v=2"},
		{"missing version", func() *http.Request { return e.request(t, e.token, gz(t, []byte(`{"station":"x"}`)), true) },
			http.StatusBadRequest, "v", "version"},
		{"NUL in a text field", func() *http.Request { return e.request(t, e.token, encode(t, nul), true) },
			http.StatusBadRequest, "readings[1].sensor", "control character"},
		{"too large after decompression", func() *http.Request { return e.request(t, e.token, bomb, true) },
			http.StatusRequestEntityTooLarge, "", "larger than"},
		{"too large on the wire", func() *http.Request {
			return e.request(t, e.token, bytes.Repeat([]byte(" "), wire.MaxCompressedBytes+1), false)
		}, http.StatusRequestEntityTooLarge, "", "exceeds"},
		{"a huge Content-Length is refused before reading", func() *http.Request {
			req := e.request(t, e.token, nil, true)
			req.Body = io.NopCloser(strings.NewReader("x"))
			req.ContentLength = 1 << 40
			return req
		}, http.StatusRequestEntityTooLarge, "", "exceeds"},
		{"another encoding", func() *http.Request {
			req := e.request(t, e.token, jsonOf(good), false)
			req.Header.Set("Content-Encoding", "br")
			return req
		}, http.StatusUnsupportedMediaType, "", "br"},
		{"GET", func() *http.Request {
			req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/ingest", nil)
			require.NoError(t, err)
			return req
		}, http.StatusMethodNotAllowed, "", "POST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			var r reply
			if tc.name == "a huge Content-Length is refused before reading" {
				r = rawRoundTrip(t, e.srv.Listener.Addr().String(), req)
			} else {
				r = do(t, req)
			}
			assert.Equal(t, tc.want, r.status, "%+v", r.err)
			assert.Equal(t, tc.wantField, r.err.Field)
			assert.Contains(t, r.err.Error, tc.wantInMsg)
		})
	}
	assert.Zero(t, e.count(t, `SELECT count(*) FROM measurements`), "no refused batch stored anything")
}

// rawRoundTrip sends only the head of req (with its declared Content-Length) and reads
// the answer, proving the server answered without waiting for the body.
func rawRoundTrip(t *testing.T, addr string, req *http.Request) reply {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	var head bytes.Buffer
	fmt.Fprintf(&head, "POST /v1/ingest HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", addr, req.ContentLength)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	head.WriteString("\r\n")
	_, err = conn.Write(head.Bytes())
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	require.NoError(t, err)
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r.err))
	return r
}

// TestZeroOptionsMeanTheDefaults builds the handler without options, as a caller without
// a configuration would: a station may then send the configuration's default burst of
// batches at once, not a fraction of it.
func TestZeroOptionsMeanTheDefaults(t *testing.T) {
	st, url := storetest.Open(t, store.Options{})
	srv := httptest.NewServer(ingest.New(st, ingest.Options{}))
	t.Cleanup(srv.Close)
	e := &env{store: st, url: url, srv: srv, token: storetest.AddStation(t, st, station)}
	start := time.Now().Add(-time.Hour)
	for i := range 50 {
		b := storetest.Batch(station, storetest.Readings(uint64(i)+1, 1, start.Add(time.Duration(i)*time.Second), time.Second))
		require.Equal(t, http.StatusOK, e.post(t, b).status, "batch %d of a burst of 50", i+1)
	}
	assert.Equal(t, 50, ingest.DefaultBurst, "the documented default")
	assert.Equal(t, 20, ingest.DefaultRatePerStation, "the documented default")
}

func TestRateLimitPerStation(t *testing.T) {
	e := newEnv(t, ingest.Options{RatePerStation: 0.01, Burst: 2})
	other := storetest.AddStation(t, e.store, "MH-NASHIK-002")
	b := storetest.Batch(station, storetest.Readings(1, 1, time.Now().Add(-time.Minute), time.Second))
	assert.Equal(t, http.StatusOK, e.post(t, b).status)
	assert.Equal(t, http.StatusOK, e.post(t, b).status)
	r := e.post(t, b)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	assert.Greater(t, atoi(t, r.header.Get("Retry-After")), 1, "wait until a token is back (100s at 0.01/s)")

	ob := storetest.Batch("MH-NASHIK-002", storetest.Readings(1, 1, time.Now().Add(-time.Minute), time.Second))
	assert.Equal(t, http.StatusOK, do(t, e.request(t, other, encode(t, ob), true)).status,
		"one station's limit does not hold back another")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	_, err := fmt.Sscanf(s, "%d", &n)
	require.NoError(t, err, "%q", s)
	return n
}

func TestMetacharactersStoredVerbatim(t *testing.T) {
	e := newEnv(t, ingest.Options{})
	nasty := []string{`'; DROP TABLE measurements;--`, `"q" 'q' \ \\`, `नदी 🌊`, `$1 %s ?`, `<b>&amp;</b>`}
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	b := storetest.Batch(station, nil)
	b.Agent = nasty[0]
	for i, s := range nasty {
		seq := uint64(i + 1)
		b.Readings = append(b.Readings, wire.Reading{Seq: seq, Time: at.Add(time.Duration(i) * time.Second), Sensor: s,
			Param: "ph", Value: 7, Unit: "pH", Quality: "good", Source: "sensor"})
		ev := storetest.Alert(seq, seq, "opened", "active", at)
		ev.Rule, ev.Key, ev.Message, ev.Sensor = s, s, s, s
		b.Alerts = append(b.Alerts, ev)
	}
	r := e.post(t, b)
	require.Equal(t, http.StatusOK, r.status, "%+v", r.err)
	rs, err := e.store.Readings(t.Context(), store.ReadingsQuery{Station: station, Limit: 10})
	require.NoError(t, err)
	require.Len(t, rs, len(nasty))
	as, err := e.store.Alerts(t.Context(), store.AlertQuery{Station: station, Limit: 10})
	require.NoError(t, err)
	require.Len(t, as, len(nasty))
	for _, a := range as {
		s := nasty[a.ID-1]
		assert.Equal(t, []string{s, s, s, s}, []string{a.Rule, a.Key, a.Message, a.Sensor})
		assert.Equal(t, s, rs[len(nasty)-int(a.ID)].Sensor)
	}
	assert.Equal(t, int64(len(nasty)), e.count(t, `SELECT count(*) FROM measurements`), "the table is still there")
}

// A batch that inflates to tens of MiB of records is refused once MaxRecords records have
// been read, with memory to match: it used to be decoded whole before its records were
// counted, and four such requests took the service to 19 GB.
func TestRecordBombRefusedWithBoundedMemory(t *testing.T) {
	e := newEnv(t, ingest.Options{})
	alert := `{"seq":1,"id":1,"time":"2026-01-01T00:00:00Z","opened_at":"2026-01-01T00:00:00Z","transition":"opened","state":"active","severity":"info","rule":"r","message":""},`
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(`{"v":1,"station":"` + station + `","alerts":[`))
	require.NoError(t, err)
	chunk := []byte(strings.Repeat(alert, 1000))
	for range 350 { // 350,000 records, 60 MB of JSON
		_, err = zw.Write(chunk)
		require.NoError(t, err)
	}
	_, err = zw.Write([]byte(strings.TrimSuffix(alert, ",") + `]}`))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.Less(t, buf.Len(), 1<<20, "the body is small on the wire")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := do(t, e.request(t, e.token, buf.Bytes(), true))
	runtime.ReadMemStats(&after)
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.status, "%+v", r.err)
	assert.Contains(t, r.err.Error, "records")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "bytes allocated while refusing the batch")
	assert.Zero(t, e.count(t, `SELECT count(*) FROM alert_events`))
}

// The decode budget bounds all batches being decoded at once; a batch that would pass
// it is answered 503 with Retry-After, and what it reserved is released.
func TestDecodeBudget(t *testing.T) {
	e := newEnv(t, ingest.Options{DecodeBudget: 32 << 10})
	big := storetest.Batch(station, storetest.Readings(1, 2000, time.Now(), time.Second))
	r := e.post(t, big)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	assert.Contains(t, r.err.Error, "decoding too much")

	small := storetest.Batch(station, storetest.Readings(1, 3, time.Now(), time.Second))
	for range 3 { // the budget was released, each time
		r = e.post(t, small)
		require.Equal(t, http.StatusOK, r.status, "%+v", r.err)
	}
	assert.EqualValues(t, 3, e.count(t, `SELECT count(*) FROM measurements`))
}
