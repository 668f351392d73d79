package govdata

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/apicall/apicalltest"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var monsoonMorning = time.Date(2025, 7, 21, 10, 0, 0, 0, IST)

// cwcReplay answers like the India-WRIS dataset API from testdata/cwc: a form POST with a
// date range, pages from 0.
type cwcReplay struct {
	t     testing.TB
	pages map[string][]byte // by the page parameter

	mu    sync.Mutex
	forms []url.Values
}

func (h *cwcReplay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	require.NoError(h.t, r.ParseForm())
	h.mu.Lock()
	h.forms = append(h.forms, r.PostForm)
	h.mu.Unlock()
	page, ok := h.pages[r.PostForm.Get("page")]
	if !ok {
		page = fixture(h.t, "cwc/river_water_level_empty.json")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(page)
}

func cwcOptions(base string) Options {
	o := Defaults(CWC)
	o.BaseURL = base
	o.PageSize = 3
	o.Now = func() time.Time { return monsoonMorning }
	o.HTTP = apicall.Options{Rate: -1, BackoffBase: time.Second}
	o.Mapping.Stations = map[string]string{"CWC-MMS-PUNE": "MH-PUNE-001", "CWC-KR-SANGLI": "MH-SANGLI-001"}
	return o
}

func TestCWCWaterLevel(t *testing.T) {
	h := &cwcReplay{t: t, pages: map[string][]byte{
		"0": fixture(t, "cwc/river_water_level_page_0.json"),
		"1": fixture(t, "cwc/river_water_level_page_1.json"),
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := newTestClient(t, cwcOptions(srv.URL))

	b, err := c.Fetch(t.Context(), "")
	require.NoError(t, err)
	require.Len(t, h.forms, 2, "a short second page ends the paging")
	f := h.forms[0]
	assert.Equal(t, "CWC", f.Get("agencyName"))
	assert.Equal(t, "Maharashtra", f.Get("stateName"))
	assert.Equal(t, "3", f.Get("size"))
	assert.Equal(t, "2025-06-21", f.Get("startdate"), "30 days of look-back on the first round")
	assert.Equal(t, "2025-07-21", f.Get("enddate"))
	assert.Equal(t, []string{"0", "1"}, []string{h.forms[0].Get("page"), h.forms[1].Get("page")})

	assert.Equal(t, 4, b.Records)
	assert.Equal(t, upstream.Counts{MissingNull: 1}, b.Skipped)
	require.Len(t, b.Readings, 3)
	r, ok := find(b.Readings, "MH-PUNE-001", telemetry.WaterLevel, "2025-07-21")
	require.True(t, ok)
	assert.Equal(t, 543.21, r.Value, "a number as a string")
	assert.Equal(t, "m", r.Unit)
	assert.True(t, time.Date(2025, 7, 21, 8, 0, 0, 0, IST).Equal(r.Time))
	for _, r := range b.Readings {
		if r.Station == "MH-SANGLI-001" {
			assert.InDelta(t, 539.8008, r.Value, 1e-9, "1771 ft: the record's own unit")
		}
	}
	assert.Equal(t, "2025-07-21T03:30:00Z", b.Cursor, "the newest reading: 09:00 IST")

	// The next round starts a week before the newest reading.
	_, err = c.Fetch(t.Context(), b.Cursor)
	require.NoError(t, err)
	assert.Equal(t, "2025-07-14", h.forms[2].Get("startdate"))
}

func TestCWCDischarge(t *testing.T) {
	body := fixture(t, "cwc/river_discharge.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	t.Cleanup(srv.Close)
	o := cwcOptions(srv.URL)
	o.PageSize = 1000
	o.Query["datasetName"] = "River Water Discharge"
	o.Mapping.Params = map[string]string{"discharge": "dataValue"}
	b, err := newTestClient(t, o).Fetch(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, upstream.Counts{MissingDash: 1}, b.Skipped)
	require.Len(t, b.Readings, 2)
	assert.Equal(t, 1520.4, b.Readings[0].Value)
	assert.Equal(t, "m3/s", b.Readings[0].Unit)
	assert.InDelta(t, 1359.2086, b.Readings[1].Value, 1e-4, "48000 cusecs")
}

func TestEndpointIgnoringPages(t *testing.T) {
	body := fixture(t, "cwc/river_water_level_page_0.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	t.Cleanup(srv.Close)
	_, err := newTestClient(t, cwcOptions(srv.URL)).Fetch(t.Context(), "")
	assert.ErrorContains(t, err, "page 1 repeats page 0: the endpoint ignores page")
}

func imdOptions(base string) Options {
	o := Defaults(IMD)
	o.BaseURL = base
	o.Now = func() time.Time { return monsoonMorning }
	o.HTTP = apicall.Options{Rate: -1, BackoffBase: time.Second}
	o.Mapping.Stations = map[string]string{"43063": "MH-PUNE-001", "43157": "MH-KOLHAPUR-001"}
	return o
}

type imdReplay struct {
	t      testing.TB
	mu     sync.Mutex
	asked  []string
	faults []int
}

func (h *imdReplay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	h.mu.Lock()
	h.asked = append(h.asked, id)
	var fault int
	if len(h.faults) > 0 {
		fault, h.faults = h.faults[0], h.faults[1:]
	}
	h.mu.Unlock()
	if fault != 0 {
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(fault)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(fixture(h.t, "imd/current_wx_"+id+".json"))
}

func TestIMDStations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &imdReplay{t: t, faults: []int{http.StatusServiceUnavailable}}
		o := imdOptions("https://mausam.imd.gov.in/api/current_wx_api.php")
		o.HTTP.HTTPClient = apicalltest.Client(h)
		c := newTestClient(t, o)
		start := time.Now()
		b, err := c.Fetch(t.Context(), "")
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 10*time.Second, "the 503's Retry-After was honoured")
		assert.Equal(t, []string{"43063", "43063", "43157"}, h.asked, "one request per mapped station")
		assert.Equal(t, 3, b.Records)
		assert.Equal(t, upstream.Counts{MissingNA: 1, BelowDetection: 1}, b.Skipped, `"NA" temperature, "TRACE" rain`)

		rain, ok := find(b.Readings, "MH-PUNE-001", telemetry.Rainfall, "2025-07-21")
		require.True(t, ok)
		assert.Equal(t, 18.6, rain.Value)
		assert.True(t, time.Date(2025, 7, 21, 8, 30, 0, 0, IST).Equal(rain.Time), "date and clock fields joined")
		air, ok := find(b.Readings, "MH-PUNE-001", telemetry.AirTemp, "2025-07-21")
		require.True(t, ok)
		assert.Equal(t, 23.4, air.Value)
		_, ok = find(b.Readings, "MH-PUNE-001", telemetry.Temp, "2025-07-21")
		assert.False(t, ok, "air temperature never stands in for the water's")
		nil0, ok := find(b.Readings, "MH-KOLHAPUR-001", telemetry.Rainfall, "2025-07-21")
		require.True(t, ok, `"NIL" rain is a measured zero at IMD`)
		assert.Equal(t, 0.0, nil0.Value)
	})
}

func TestParseRecords(t *testing.T) {
	rs, err := ParseRecords(fixture(t, "cwc/river_water_level_page_0.json"), "data")
	require.NoError(t, err)
	assert.Len(t, rs, 3)
	rs, err = ParseRecords(fixture(t, "cwc/river_water_level_empty.json"), "data")
	require.NoError(t, err)
	assert.Empty(t, rs)
	rs, err = ParseRecords([]byte(`{"statusCode":200}`), "data")
	require.NoError(t, err)
	assert.Empty(t, rs, "no list is no records")
	rs, err = ParseRecords([]byte(`{"result":{"rows":[{"a":1}]}}`), "result.rows")
	require.NoError(t, err)
	assert.Len(t, rs, 1)

	for body, path := range map[string]string{
		`[{"a":1}`:             "",
		`{"data":{"a":1}}`:     "data",
		`{"data":[1,2]}`:       "data",
		`[{"a":1}]`:            "data",
		`{"result":[{"a":1}]}`: "result.rows",
	} {
		_, err := ParseRecords([]byte(body), path)
		assert.Error(t, err, "%s at %q", body, path)
	}
}

func fuzzRecords(f *testing.F, o Options, seeds ...string) {
	for _, s := range seeds {
		f.Add(fixture(f, s))
	}
	f.Add([]byte(`{"data":[{"stationCode":["x"],"dataTime":{},"dataValue":"1e308","unit":"furlongs"}]}`))
	f.Add([]byte(`[{"Station_Code":43063,"Date":"2025-02-30","Time":"25:61","Last 24 hrs Rainfall":"-1"}]`))
	m, err := o.Mapping.compile()
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte) {
		rs, err := ParseRecords(body, o.RecordsPath)
		if err != nil {
			return
		}
		b := upstream.Batch{Skipped: upstream.Counts{}}
		for _, r := range rs {
			m.readings(r, &b)
		}
		checkBatch(t, b, len(rs))
	})
}

func FuzzCWCRecords(f *testing.F) {
	fuzzRecords(f, cwcOptions("https://x"), "cwc/river_water_level_page_0.json",
		"cwc/river_water_level_page_1.json", "cwc/river_discharge.json", "cwc/river_water_level_empty.json")
}

func FuzzIMDRecords(f *testing.F) {
	fuzzRecords(f, imdOptions("https://x"), "imd/current_wx_43063.json", "imd/current_wx_43157.json")
}
