package upstreamsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// simStart is late in its month, so that every station has sampled in it already.
var simStart = time.Date(2025, 11, 28, 6, 30, 0, 0, time.UTC)

var decimal = regexp.MustCompile(`^-?\d+(\.\d+)?$`)

// clock is a settable time for the simulators.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newOGD(t *testing.T, cfg OGDConfig) (*OGD, *httptest.Server, *clock) {
	t.Helper()
	c := &clock{t: simStart}
	cfg.Now = c.now
	s, err := NewOGD(cfg, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv, c
}

func get(t *testing.T, u string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

func control(t *testing.T, base string, form url.Values) {
	t.Helper()
	resp, err := http.PostForm(base+"/_sim/fault", form)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

// envelope is what a client of the gateway sees, decoded loosely.
type envelope map[string]any

func decode(t *testing.T, b []byte) envelope {
	t.Helper()
	var e envelope
	require.NoError(t, json.Unmarshal(b, &e), "%.300s", b)
	return e
}

func (e envelope) records() []map[string]any {
	var out []map[string]any
	for _, r := range e["records"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

func TestOGDGatewayKeyCheck(t *testing.T) {
	_, srv, _ := newOGD(t, OGDConfig{APIKey: "k1"})
	base := srv.URL + "/resource/" + DefaultResourceID
	code, _, body := get(t, base+"?format=json")
	assert.Equal(t, 400, code)
	assert.JSONEq(t, `{"error": "Authorization field missing"}`, string(body))
	code, _, body = get(t, base+"?api-key=k2")
	assert.Equal(t, 403, code)
	assert.JSONEq(t, `{"error": "Key not authorised"}`, string(body))
	code, _, _ = get(t, srv.URL+"/resource/other?api-key=k1")
	assert.Equal(t, 404, code)
	code, _, _ = get(t, base+"?api-key=k1&format=xml")
	assert.Equal(t, 400, code)
}

func TestOGDEnvelopeAndPaging(t *testing.T) {
	s, srv, _ := newOGD(t, OGDConfig{Seed: 3, Months: 12})
	base := srv.URL + "/resource/" + DefaultResourceID + "?api-key=any&format=json"
	code, _, body := get(t, base+"&limit=5")
	require.Equal(t, 200, code)
	e := decode(t, body)
	assert.Equal(t, "ok", e["status"])
	assert.Equal(t, "5", e["limit"], "limit is a string")
	assert.Equal(t, "0", e["offset"], "offset is a string")
	total, ok := e["total"].(float64)
	require.True(t, ok, "total is a number")
	assert.Equal(t, 5.0, e["count"])
	assert.Equal(t, 6*12.0, total, "six stations, twelve months")
	for _, k := range []string{"index_name", "title", "desc", "created", "updated", "created_date", "updated_date",
		"field", "message", "version"} {
		assert.Contains(t, e, k)
	}
	assert.Len(t, e["field"], len(ogdFields))

	// Page to the end with the default limit of 10.
	var all []map[string]any
	for offset := 0; ; offset += 10 {
		_, _, body := get(t, base+"&offset="+strconv.Itoa(offset))
		recs := decode(t, body).records()
		all = append(all, recs...)
		if len(recs) < 10 {
			break
		}
	}
	assert.Len(t, all, int(total))
	spellings := map[string]int{}
	numbers := 0
	for _, r := range all {
		assert.Equal(t, "Maharashtra", r["state_name"])
		if _, ok := r["temperature"].(float64); ok {
			numbers++
		}
		for _, f := range []string{"dissolved_oxygen", "ph", "conductivity", "bod", "fecal_coliform", "nitrate_n"} {
			v, ok := r[f].(string)
			require.True(t, ok, "%s is a string: %v", f, r[f])
			if !decimal.MatchString(v) {
				spellings[v]++
			}
		}
	}
	assert.Equal(t, len(all), numbers, "temperature comes as a JSON number")
	for _, sp := range []string{"NA", "NAN", "-", "", "BDL"} {
		assert.Positive(t, spellings[sp], "spelling %q is served", sp)
	}
	assert.EqualValues(t, len(all)/10+2, s.Counters().Pages)

	// The values are plausible for each river: Pune's BOD is high, Sangli's low.
	bod := map[string][]float64{}
	for _, r := range all {
		if v, err := strconv.ParseFloat(r["bod"].(string), 64); err == nil {
			bod[r["station_code"].(string)] = append(bod[r["station_code"].(string)], v)
		}
	}
	assert.Greater(t, mean(bod["2683"]), 2*mean(bod["1152"]), "Pune against Sangli")

	// Limits beyond the gateway's are served as its largest.
	_, _, body = get(t, base+"&limit=5000")
	assert.Equal(t, strconv.Itoa(MaxOGDLimit), decode(t, body)["limit"])
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func TestOGDFilters(t *testing.T) {
	_, srv, _ := newOGD(t, OGDConfig{Months: 6})
	base := srv.URL + "/resource/" + DefaultResourceID + "?api-key=any&limit=100"
	_, _, body := get(t, base+"&filters[station_code]=1153")
	e := decode(t, body)
	assert.Equal(t, 6.0, e["total"])
	for _, r := range e.records() {
		assert.Equal(t, "1153", r["station_code"])
	}
	_, _, body = get(t, base+"&filters[river]=Krishna")
	assert.Equal(t, 0.0, decode(t, body)["total"], "an unknown field matches nothing")
}

func TestOGDRevisesAfterAWhile(t *testing.T) {
	_, srv, clk := newOGD(t, OGDConfig{Months: 3, ReviseAfter: time.Hour})
	u := srv.URL + "/resource/" + DefaultResourceID + "?api-key=any&limit=100&filters[station_code]=2683"
	_, _, before := get(t, u)
	clk.t = simStart.Add(time.Hour)
	_, _, after := get(t, u)
	eb, ea := decode(t, before), decode(t, after)
	assert.NotEqual(t, eb["updated_date"], ea["updated_date"], "the stamp moves with the republication")
	assert.Equal(t, simStart.Add(time.Hour).Format("2006-01-02T15:04:05Z"), ea["updated_date"])
	rb, ra := eb.records(), ea.records()
	require.Equal(t, len(rb), len(ra))
	changed := 0
	for i := range rb {
		for k, v := range rb[i] {
			if ra[i][k] != v {
				changed++
				assert.Equal(t, "bod", k)
				assert.Equal(t, len(rb)-1, i, "the newest record")
				old, _ := strconv.ParseFloat(v.(string), 64)
				revised, _ := strconv.ParseFloat(ra[i][k].(string), 64)
				assert.InDelta(t, old*1.15, revised, 0.06)
			}
		}
	}
	assert.Equal(t, 1, changed)
}

func TestOGDRevisionOnDemand(t *testing.T) {
	_, srv, clk := newOGD(t, OGDConfig{Months: 3, ReviseAfter: -1})
	u := srv.URL + "/resource/" + DefaultResourceID + "?api-key=any&limit=1"
	_, _, before := get(t, u)
	clk.t = simStart.Add(time.Hour)
	_, _, still := get(t, u)
	assert.Equal(t, decode(t, before)["updated_date"], decode(t, still)["updated_date"], "never by itself")
	resp, err := http.Post(srv.URL+"/_sim/revise", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	_, _, after := get(t, u)
	assert.Equal(t, simStart.Add(time.Hour).Format("2006-01-02T15:04:05Z"), decode(t, after)["updated_date"])
}

func TestOGDFaultsOnDemand(t *testing.T) {
	s, srv, _ := newOGD(t, OGDConfig{FaultConfig: FaultConfig{RetryAfter: 7 * time.Second}})
	base := srv.URL + "/resource/" + DefaultResourceID + "?api-key=any"
	control(t, srv.URL, url.Values{"kind": {"429"}})
	control(t, srv.URL, url.Values{"kind": {"502"}, "count": {"2"}})
	control(t, srv.URL, url.Values{"kind": {"malformed"}, "offset": {"10"}})

	code, h, body := get(t, base)
	assert.Equal(t, 429, code)
	assert.Equal(t, "7", h.Get("Retry-After"), "seconds at the gateway")
	assert.Contains(t, string(body), "rate limit")
	for range 2 {
		code, _, body = get(t, base)
		assert.Equal(t, 502, code)
		assert.Contains(t, string(body), "<title>502 Bad Gateway</title>")
	}
	code, _, body = get(t, base+"&offset=0")
	assert.Equal(t, 200, code, "the malformed fault waits for its offset")
	assert.True(t, json.Valid(body))
	code, _, body = get(t, base+"&offset=10")
	assert.Equal(t, 200, code)
	assert.False(t, json.Valid(body), "a page cut in half")
	code, _, body = get(t, base+"&offset=10")
	assert.True(t, json.Valid(body), "one fault, one request")
	assert.Equal(t, map[Fault]int{FaultRateLimit: 1, FaultBadGateway: 2, FaultMalformed: 1}, s.Counters().Faults)

	resp, err := http.PostForm(srv.URL+"/_sim/fault", url.Values{"kind": {"teapot"}})
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode)
	assert.Contains(t, string(b), `unknown fault "teapot"`)
}

func TestOGDSlowFaultEndsWithTheClient(t *testing.T) {
	_, srv, _ := newOGD(t, OGDConfig{FaultConfig: FaultConfig{SlowDelay: time.Hour}})
	control(t, srv.URL, url.Values{"kind": {"slow"}})
	c := &http.Client{Timeout: 200 * time.Millisecond}
	_, err := c.Get(srv.URL + "/resource/" + DefaultResourceID + "?api-key=any")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "Timeout") || strings.Contains(err.Error(), "deadline"), err.Error())
}

func TestOGDConfigChecks(t *testing.T) {
	_, err := NewOGD(OGDConfig{ResourceID: "a/b", Months: -1, FaultConfig: FaultConfig{FaultRate: 2}}, nil)
	require.Error(t, err)
	for _, want := range []string{"resource id", "months", "fault rate"} {
		assert.ErrorContains(t, err, want)
	}
}
