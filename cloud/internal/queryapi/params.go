package queryapi

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// paramError is a bad query parameter; the API answers 400 naming it.
type paramError struct {
	Field string
	Msg   string
}

func (e *paramError) Error() string { return e.Field + ": " + e.Msg }

// Page sizes.
const (
	defaultLimit = 500
	maxLimit     = 10000
)

// query reads and checks the parameters of one request, remembering the first problem.
type query struct {
	v   url.Values
	err *paramError
}

func newQuery(v url.Values, allowed ...string) *query {
	q := &query{v: v}
	for _, name := range slices.Sorted(maps.Keys(v)) {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if !known {
			field := name
			if field == "" {
				field = "query" // "?=x" has a parameter without a name
			}
			known := "none"
			if len(allowed) > 0 {
				known = strings.Join(allowed, ", ")
			}
			q.fail(field, fmt.Sprintf("unknown parameter %q (known: %s)", name, known))
			break
		}
	}
	for _, name := range allowed {
		if len(v[name]) > 1 {
			q.fail(name, "given more than once")
		}
	}
	return q
}

func (q *query) fail(field, msg string) {
	if q.err == nil {
		q.err = &paramError{Field: field, Msg: msg}
	}
}

func (q *query) time(name string) time.Time {
	s := q.v.Get(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		q.fail(name, fmt.Sprintf("%q is not an RFC 3339 time like 2025-11-13T12:00:00Z", s))
		return time.Time{}
	}
	return t.UTC()
}

// timeRange reads from and to; to must be after from.
func (q *query) timeRange() (from, to time.Time) {
	from, to = q.time("from"), q.time("to")
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		q.fail("to", "must be after from")
	}
	return from, to
}

func (q *query) limit() int {
	s := q.v.Get("limit")
	if s == "" {
		return defaultLimit
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		q.fail("limit", fmt.Sprintf("%q must be a whole number 1..%d", s, maxLimit))
		return defaultLimit
	}
	return n
}

func (q *query) param() string {
	s := q.v.Get("param")
	if s == "" {
		return ""
	}
	p, err := telemetry.ParseParam(s)
	if err != nil {
		q.fail("param", fmt.Sprintf("%q is not a known parameter", s))
		return ""
	}
	return string(p)
}

func (q *query) boolean(name string) *bool {
	s := q.v.Get(name)
	if s == "" {
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.fail(name, fmt.Sprintf("%q must be true or false", s))
		return nil
	}
	return &b
}

func (q *query) station(name string) string {
	s := q.v.Get(name)
	if s != "" && !telemetry.ValidStationID(s) {
		q.fail(name, fmt.Sprintf("%q is not a station id", s))
		return ""
	}
	return s
}

func (q *query) cursor(kind string) *cursor {
	s := q.v.Get("cursor")
	if s == "" {
		return nil
	}
	c, err := decodeCursor(s, kind)
	if err != nil {
		q.fail("cursor", err.Error())
		return nil
	}
	return c
}

func (q *query) bucket() string {
	switch s := q.v.Get("bucket"); s {
	case "", kindReadings:
		return kindReadings
	case kindHourly, kindDaily:
		return s
	default:
		q.fail("bucket", fmt.Sprintf("%q must be raw, 1h or 1d", s))
		return kindReadings
	}
}

// revisions reads revisions=current|all: whether superseded revisions are listed too.
func (q *query) revisions() bool {
	switch s := q.v.Get("revisions"); s {
	case "", "current":
		return false
	case "all":
		return true
	default:
		q.fail("revisions", fmt.Sprintf("%q must be current or all", s))
		return false
	}
}

// sources reads source=S[,S...]: only readings of these sources (sensor, manual, api,
// satellite, model); none means every source.
func (q *query) sources() []string {
	s := q.v.Get("source")
	if s == "" {
		return nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		switch src := telemetry.Source(name); {
		case !src.Valid():
			q.fail("source", fmt.Sprintf("%q is not a source (sensor, manual, api, satellite, model)", name))
			return nil
		case !slices.Contains(out, name):
			out = append(out, name)
		}
	}
	return out
}

// csv reads format=json|csv. CSV streams the whole range of raw readings, so it takes no
// bucket, limit or cursor.
func (q *query) csv(bucket string) bool {
	switch s := q.v.Get("format"); s {
	case "", "json":
		return false
	case "csv":
		switch {
		case bucket != kindReadings:
			q.fail("bucket", "format=csv exports raw readings only")
		case q.v.Get("limit") != "":
			q.fail("limit", "format=csv streams the whole range: no limit")
		case q.v.Get("cursor") != "":
			q.fail("cursor", "format=csv streams the whole range: no cursor")
		}
		return true
	default:
		q.fail("format", fmt.Sprintf("%q must be json or csv", s))
		return false
	}
}
