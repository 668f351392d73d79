package cloud

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Grafana side of the dashboards is emulated here as far as their SQL goes: what
// Grafana does to a query's text before the PostgreSQL data source runs it, in Grafana's
// order, for the dashboards' own time range:
//
//  1. template variables (the browser): $name and ${name}. A variable with several
//     values or "All" becomes its values quoted as SQL strings and joined with commas;
//     a single-value variable is its value with quotes doubled (Grafana's
//     interpolateVariable for SQL data sources). ${name:format}, [[name]] and variables
//     the dashboard does not define are refused.
//  2. $__interval and $__interval_ms (the server's sqleng.Interpolate), with the interval
//     the panel gets: the time range over its data points, rounded up to a round step,
//     and no shorter than the panel's minimum interval. Grafana's rounding differs in
//     details; the shape ("1h", "30m") is what the SQL sees.
//  3. the macros of the PostgreSQL data source (pkg/tsdb/grafana-postgresql-datasource/
//     macros.go), as a data source with timescaledb: false expands them:
//     $__time(col), $__timeEpoch(col), $__timeFilter(col), $__timeFrom(), $__timeTo(),
//     $__timeGroup(col, interval), $__timeGroupAlias(col, interval),
//     $__unixEpochFilter(col), $__unixEpochFrom(), $__unixEpochTo(). Any other macro, and
//     a fill mode (a third argument to $__timeGroup), is refused.
//
// Whatever still looks like a variable or a macro afterwards fails the query.

// grafanaVar is a dashboard variable with the values it has for one query.
type grafanaVar struct {
	multi  bool // multi-value or "All": values are quoted and joined
	values []string
}

// grafanaEnv is what a query is expanded with.
type grafanaEnv struct {
	from, to time.Time
	interval time.Duration
	vars     map[string]grafanaVar
}

var (
	templateVarRe = regexp.MustCompile(`\$(\w+)|\$\{([^}]*)\}|\[\[([^\]]*)\]\]`)
	macroRe       = regexp.MustCompile(`\$([_a-zA-Z0-9]+)\(([^\)]*)\)`)
	leftoverRe    = regexp.MustCompile(`\$(\{|\w)|\[\[`)
)

// expand turns a dashboard query into the SQL the data source runs.
func (e grafanaEnv) expand(sql string) (string, error) {
	var errs []string
	sql = templateVarRe.ReplaceAllStringFunc(sql, func(m string) string {
		g := templateVarRe.FindStringSubmatch(m)
		name := g[1]
		switch {
		case g[3] != "":
			errs = append(errs, fmt.Sprintf("%s: the [[name]] syntax is deprecated; use ${name}", m))
			return m
		case g[2] != "":
			if strings.ContainsAny(g[2], ":.") {
				errs = append(errs, fmt.Sprintf("%s: variable formats and fields are not emulated", m))
				return m
			}
			name = g[2]
		}
		if strings.HasPrefix(name, "__") {
			return m // built-ins and macros: later steps
		}
		v, ok := e.vars[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: the dashboard defines no variable %q", m, name))
			return m
		}
		return v.format()
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}

	sql = strings.ReplaceAll(sql, "$__interval_ms", strconv.FormatInt(e.interval.Milliseconds(), 10))
	sql = strings.ReplaceAll(sql, "$__interval", formatInterval(e.interval))
	sql = strings.ReplaceAll(sql, "$__unixEpochFrom()", strconv.FormatInt(e.from.Unix(), 10))
	sql = strings.ReplaceAll(sql, "$__unixEpochTo()", strconv.FormatInt(e.to.Unix(), 10))

	var macroErr error
	expanded := sql
	expanded = macroRe.ReplaceAllStringFunc(expanded, func(m string) string {
		g := macroRe.FindStringSubmatch(m)
		name := g[1]
		// Grafana's pre-5.3 compatibility: a $__timeGroup directly followed by a comma is
		// taken as $__timeGroupAlias.
		if name == "__timeGroup" {
			if i := strings.Index(sql, m); i >= 0 && len(sql) > i+len(m) && sql[i+len(m)] == ',' {
				name = "__timeGroupAlias"
			}
		}
		args := strings.Split(g[2], ",")
		for i := range args {
			args[i] = strings.TrimSpace(args[i])
		}
		out, err := e.macro(name, args)
		if err != nil && macroErr == nil {
			macroErr = fmt.Errorf("%s: %w", m, err)
		}
		return out
	})
	if macroErr != nil {
		return "", macroErr
	}
	if loc := leftoverRe.FindStringIndex(expanded); loc != nil {
		return "", fmt.Errorf("%q is left unexpanded: not something Grafana's PostgreSQL data source expands, or not emulated here", expanded[loc[0]:min(loc[1]+20, len(expanded))])
	}
	return expanded, nil
}

func (v grafanaVar) format() string {
	if v.multi {
		quoted := make([]string, len(v.values))
		for i, s := range v.values {
			quoted[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
		}
		return strings.Join(quoted, ",")
	}
	if len(v.values) == 0 {
		return ""
	}
	return strings.ReplaceAll(v.values[0], "'", "''")
}

func (e grafanaEnv) macro(name string, args []string) (string, error) {
	col := func() (string, error) {
		if args[0] == "" {
			return "", fmt.Errorf("missing time column argument for macro %s", name)
		}
		return args[0], nil
	}
	rfc := func(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339Nano) + "'" }
	switch name {
	case "__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter":
		c, err := col()
		if err != nil {
			return "", err
		}
		switch name {
		case "__time":
			return c + ` AS "time"`, nil
		case "__timeEpoch":
			return "extract(epoch from " + c + `) as "time"`, nil
		case "__timeFilter":
			return c + " BETWEEN " + rfc(e.from) + " AND " + rfc(e.to), nil
		default:
			return fmt.Sprintf("%s >= %d AND %s <= %d", c, e.from.Unix(), c, e.to.Unix()), nil
		}
	case "__timeFrom":
		return rfc(e.from), nil
	case "__timeTo":
		return rfc(e.to), nil
	case "__timeGroup", "__timeGroupAlias":
		if len(args) < 2 {
			return "", fmt.Errorf("macro %s needs a time column and an interval", name)
		}
		if len(args) > 2 {
			return "", fmt.Errorf("fill modes (%s) are not emulated", args[2])
		}
		iv, err := parseInterval(strings.Trim(args[1], "'"))
		if err != nil {
			return "", err
		}
		s := strconv.FormatFloat(iv.Seconds(), 'f', -1, 64)
		g := "floor(extract(epoch from " + args[0] + ")/" + s + ")*" + s
		if name == "__timeGroupAlias" {
			g += ` AS "time"`
		}
		return g, nil
	default:
		return "", fmt.Errorf("macro %s is not emulated (see the list at the top of grafana_test.go)", name)
	}
}

// parseInterval reads an interval as Grafana's gtime.ParseInterval does for the units a
// dashboard uses: ms, s, m, h, d, w.
func parseInterval(s string) (time.Duration, error) {
	m := regexp.MustCompile(`^(\d+)(ms|s|m|h|d|w)$`).FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("interval %q: a number and one of ms, s, m, h, d, w", s)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("interval %q: not a positive number", s)
	}
	unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute,
		"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	return time.Duration(n) * unit, nil
}

// formatInterval writes an interval as Grafana's gtime.FormatInterval does: in its
// largest whole unit.
func formatInterval(d time.Duration) string {
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"y", 365 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if d >= u.d {
			return fmt.Sprintf("%d%s", d/u.d, u.unit)
		}
	}
	return "1ms"
}

// panelInterval is the $__interval a panel gets for a time range: the range over its data
// points (Grafana's default when the panel sets none is about its width in pixels; 1000
// here), rounded up to a round step, at least the panel's minimum interval.
func panelInterval(rng time.Duration, maxDataPoints int, minInterval time.Duration) time.Duration {
	raw := rng / time.Duration(maxDataPoints)
	steps := []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
		2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}
	iv := steps[len(steps)-1]
	for _, s := range steps {
		if s >= raw {
			iv = s
			break
		}
	}
	return max(iv, minInterval)
}

// parseRelative reads a dashboard time such as now, now-7d or now-6h.
func parseRelative(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	rest, ok := strings.CutPrefix(s, "now-")
	if !ok {
		return time.Time{}, fmt.Errorf("time %q: only now and now-<interval> are emulated", s)
	}
	d, err := parseInterval(rest)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return now.Add(-d), nil
}

// dashboard is the part of a Grafana dashboard JSON that its queries depend on.
type dashboard struct {
	UID   string `json:"uid"`
	Title string `json:"title"`
	Time  struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []dashVar `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *datasourceRef  `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

type panel struct {
	ID            int            `json:"id"`
	Type          string         `json:"type"`
	Title         string         `json:"title"`
	Datasource    *datasourceRef `json:"datasource"`
	Repeat        string         `json:"repeat"`
	Interval      string         `json:"interval"`
	MaxDataPoints int            `json:"maxDataPoints"`
	Panels        []panel        `json:"panels"` // a collapsed row's
	Targets       []struct {
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
		Format     string         `json:"format"`
		RawQuery   bool           `json:"rawQuery"`
		RawSQL     string         `json:"rawSql"`
	} `json:"targets"`
	FieldConfig struct {
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Transformations []struct {
		ID      string `json:"id"`
		Options struct {
			IndexByName map[string]int `json:"indexByName"`
		} `json:"options"`
	} `json:"transformations"`
}

func loadDashboard(t *testing.T, file string) dashboard {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d), file)
	return d
}

// dashQuery is one SQL query of a dashboard, with what its panel expects of it.
type dashQuery struct {
	where       string // in messages
	sql         string
	format      string        // time_series or table
	minInterval time.Duration // the panel's
	maxPoints   int
	repeat      []string // variables the panel is repeated over (its row's first)
	columns     []string // table: the columns the panel lays out, in order
	named       []string // columns the panel's overrides refer to by name
}

// queries lists the SQL queries of a dashboard's panels, rows' panels included, and
// fails t for a panel that queries anything but the data source uid in SQL.
func (d dashboard) queries(t *testing.T, dsUID string) []dashQuery {
	t.Helper()
	var out []dashQuery
	var walk func(ps []panel, rowRepeat string)
	walk = func(ps []panel, rowRepeat string) {
		for _, p := range ps {
			if p.Type == "row" {
				rowRepeat = p.Repeat
				walk(p.Panels, rowRepeat)
				continue
			}
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			require.NotEmpty(t, p.Targets, "%s has no query", where)
			var minIv time.Duration
			if p.Interval != "" {
				iv, err := parseInterval(p.Interval)
				require.NoError(t, err, "%s: interval", where)
				minIv = iv
			}
			var repeat []string
			for _, r := range []string{rowRepeat, p.Repeat} {
				if r != "" {
					repeat = append(repeat, r)
				}
			}
			var columns []string
			for _, tr := range p.Transformations {
				if tr.ID == "organize" {
					columns = make([]string, len(tr.Options.IndexByName))
					for name, i := range tr.Options.IndexByName {
						require.Less(t, i, len(columns), "%s: organize indexes", where)
						columns[i] = name
					}
				}
			}
			var named []string
			for _, o := range p.FieldConfig.Overrides {
				if o.Matcher.ID == "byName" {
					named = append(named, fmt.Sprint(o.Matcher.Options))
				}
			}
			for _, tg := range p.Targets {
				ds := targetDatasource(tg.Datasource, p.Datasource)
				require.NotNil(t, ds, "%s: no data source", where)
				require.Equal(t, dsUID, ds.UID, "%s: the provisioned data source", where)
				require.True(t, tg.RawQuery && tg.RawSQL != "", "%s/%s: a raw SQL query", where, tg.RefID)
				require.Contains(t, []string{"time_series", "table"}, tg.Format, "%s/%s: format", where, tg.RefID)
				if tg.Format == "table" {
					require.NotEmpty(t, columns, "%s: a table lays its columns out with an organize transformation, which this test checks against the query", where)
				}
				out = append(out, dashQuery{where: where + "/" + tg.RefID, sql: tg.RawSQL, format: tg.Format,
					minInterval: minIv, maxPoints: cmp.Or(p.MaxDataPoints, 1000), repeat: repeat, columns: columns, named: named})
			}
		}
	}
	walk(d.Panels, "")
	return out
}

func targetDatasource(a, b *datasourceRef) *datasourceRef {
	if a != nil {
		return a
	}
	return b
}

// pgTypeClass sorts result column types the way Grafana's SQL data frames do.
func pgTypeClass(oid uint32) string {
	switch oid {
	case pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.DateOID:
		return "time"
	case pgtype.Float8OID, pgtype.Float4OID, pgtype.NumericOID, pgtype.Int8OID, pgtype.Int4OID, pgtype.Int2OID:
		return "number"
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		return "string"
	case pgtype.BoolOID:
		return "bool"
	}
	return fmt.Sprintf("oid %d", oid)
}

// result is what a query returned.
type result struct {
	columns []string
	classes []string
	rows    [][]any
}

func runQuery(ctx context.Context, conn *pgx.Conn, sql string) (result, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return result{}, err
	}
	defer rows.Close()
	var res result
	for _, fd := range rows.FieldDescriptions() {
		res.columns = append(res.columns, fd.Name)
		res.classes = append(res.classes, pgTypeClass(fd.DataTypeOID))
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return result{}, err
		}
		res.rows = append(res.rows, vals)
	}
	return res, rows.Err()
}

// dashboardRun runs every query of a dashboard as Grafana would over conn: the variables
// first, in order, each with the values of those before it ("All" selected), then every
// panel's queries, once for each value of the variables it repeats over.
type dashboardRun struct {
	dash    dashboard
	env     grafanaEnv
	results map[string][]result // by dashQuery.where
}

func runDashboard(t *testing.T, conn *pgx.Conn, d dashboard, dsUID string, now time.Time) *dashboardRun {
	t.Helper()
	from, err := parseRelative(d.Time.From, now)
	require.NoError(t, err)
	to, err := parseRelative(d.Time.To, now)
	require.NoError(t, err)
	run := &dashboardRun{dash: d, env: grafanaEnv{from: from, to: to, vars: map[string]grafanaVar{}},
		results: map[string][]result{}}

	for _, v := range d.Templating.List {
		where := "variable " + v.Name
		require.Equal(t, "query", v.Type, "%s: only query variables are emulated", where)
		require.NotNil(t, v.Datasource, where)
		require.Equal(t, dsUID, v.Datasource.UID, "%s: the provisioned data source", where)
		var sql string
		require.NoError(t, json.Unmarshal(v.Query, &sql), "%s: the query is SQL text", where)
		env := run.env
		env.interval = panelInterval(to.Sub(from), 1000, 0)
		expanded, err := env.expand(sql)
		require.NoError(t, err, where)
		res, err := runQuery(t.Context(), conn, expanded)
		require.NoError(t, err, "%s:\n%s", where, expanded)
		run.results[where] = append(run.results[where], res)
		valueCol := 0
		if len(res.columns) != 1 {
			require.ElementsMatch(t, []string{"__text", "__value"}, res.columns,
				"%s: one column, or __text and __value", where)
			valueCol = slices.Index(res.columns, "__value")
		}
		require.NotEmpty(t, res.rows, "%s: no values with the test's data:\n%s", where, expanded)
		var values []string
		for _, r := range res.rows {
			values = append(values, fmt.Sprint(r[valueCol]))
		}
		run.env.vars[v.Name] = grafanaVar{multi: v.Multi || v.IncludeAll, values: values}
		t.Logf("%s: %d values %v", where, len(values), values)
	}

	queries, runs := d.queries(t, dsUID), 0
	for _, q := range queries {
		for _, env := range run.env.repeated(t, q.repeat) {
			runs++
			env.interval = panelInterval(to.Sub(from), q.maxPoints, q.minInterval)
			expanded, err := env.expand(q.sql)
			require.NoError(t, err, q.where)
			res, err := runQuery(t.Context(), conn, expanded)
			require.NoError(t, err, "%s:\n%s", q.where, expanded)
			checkShape(t, q, res, expanded)
			run.results[q.where] = append(run.results[q.where], res)
		}
	}
	t.Logf("%d panel queries, %d runs with the repeats, from %s to %s", len(queries), runs,
		from.Format(time.RFC3339), to.Format(time.RFC3339))
	return run
}

// repeated returns the environments of a panel repeated over vars: one for each
// combination of their values, each variable holding one value (and still formatted
// as a multi-value one, as Grafana's repeats keep the variable's kind).
func (e grafanaEnv) repeated(t *testing.T, vars []string) []grafanaEnv {
	t.Helper()
	envs := []grafanaEnv{e}
	for _, name := range vars {
		v, ok := e.vars[name]
		require.True(t, ok, "repeated over %q, which the dashboard does not define", name)
		var next []grafanaEnv
		for _, env := range envs {
			for _, val := range v.values {
				vars := map[string]grafanaVar{}
				for k, x := range env.vars {
					vars[k] = x
				}
				vars[name] = grafanaVar{multi: v.multi, values: []string{val}}
				env.vars = vars
				next = append(next, env)
			}
		}
		envs = next
	}
	return envs
}

// checkShape checks a result against what its panel needs: for a time series a time
// column named time, sorted, an optional metric column of text and numeric values; for a
// table exactly the columns it lays out. Either way some rows, and every column the
// panel's overrides name.
func checkShape(t *testing.T, q dashQuery, res result, sql string) {
	t.Helper()
	require.NotEmpty(t, res.rows, "%s returned no rows with the test's data:\n%s", q.where, sql)
	for _, n := range q.named {
		assert.Contains(t, res.columns, n, "%s: an override names column %q", q.where, n)
	}
	if q.format == "table" {
		assert.Equal(t, q.columns, res.columns, "%s: the columns its organize transformation lays out", q.where)
		return
	}
	// Grafana needs a time series sorted by time; rows that happen to come sorted prove
	// nothing, so the query must say so.
	assert.Regexp(t, `(?i)\border\s+by\b`, sql, "%s: a time series query orders its rows by time", q.where)
	ti := slices.Index(res.columns, "time")
	require.GreaterOrEqual(t, ti, 0, "%s: a time series needs a column named time; got %v", q.where, res.columns)
	assert.Contains(t, []string{"time", "number"}, res.classes[ti], "%s: time is a timestamp or epoch seconds", q.where)
	values := 0
	for i, c := range res.columns {
		switch {
		case i == ti:
		case c == "metric":
			assert.Equal(t, "string", res.classes[i], "%s: metric names the series", q.where)
		default:
			assert.Equal(t, "number", res.classes[i], "%s: value column %s must be numeric", q.where, c)
			values++
		}
	}
	assert.Positive(t, values, "%s: no value column", q.where)
	var last float64
	for i, r := range res.rows {
		var ts float64
		switch v := r[ti].(type) {
		case time.Time:
			ts = float64(v.UnixNano()) / 1e9
		case float64:
			ts = v
		case pgtype.Numeric:
			f, err := v.Float64Value()
			require.NoError(t, err)
			ts = f.Float64
		default:
			require.Failf(t, "time column", "%s: %T", q.where, v)
		}
		require.False(t, math.IsNaN(ts), q.where)
		require.GreaterOrEqual(t, ts, last, "%s: rows must come in time order (row %d)", q.where, i)
		last = ts
	}
}

// The emulated expansion matches Grafana's for the same inputs (the expected strings are
// what Grafana's macro engine and interpolateVariable produce), and refuses what it does
// not emulate.
func TestGrafanaExpand(t *testing.T) {
	from := time.Date(2018, 4, 12, 18, 0, 0, 0, time.UTC)
	env := grafanaEnv{from: from, to: from.Add(5 * time.Minute), interval: time.Hour, vars: map[string]grafanaVar{
		"station": {multi: true, values: []string{"MH-PUNE-001", "O'Neil"}},
		"param":   {values: []string{"d'o"}},
	}}
	tests := []struct{ in, want string }{
		{"WHERE $__timeFilter(time_column)", "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'"},
		{"SELECT $__time(time_column)", `SELECT time_column AS "time"`},
		{"SELECT $__timeEpoch(time_column)", `SELECT extract(epoch from time_column) as "time"`},
		{"$__timeFrom() $__timeTo()", "'2018-04-12T18:00:00Z' '2018-04-12T18:05:00Z'"},
		{"GROUP BY $__timeGroup(time_column,'5m')", "GROUP BY floor(extract(epoch from time_column)/300)*300"},
		{"SELECT $__timeGroup(time_column, '5m'), v", `SELECT floor(extract(epoch from time_column)/300)*300 AS "time", v`},
		{"SELECT $__timeGroupAlias(bucket, $__interval)", `SELECT floor(extract(epoch from bucket)/3600)*3600 AS "time"`},
		{"$__unixEpochFilter(t) $__unixEpochFrom()", "t >= 1523556000 AND t <= 1523556300 1523556000"},
		{"$__interval_ms", "3600000"},
		{"IN ($station) AND ${station}", "IN ('MH-PUNE-001','O''Neil') AND 'MH-PUNE-001','O''Neil'"},
		{"= '$param'", "= 'd''o'"},
	}
	for _, tt := range tests {
		got, err := env.expand(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
	for _, bad := range []struct{ in, want string }{
		{"$__timeGroup(t, '5m', 0)", "fill modes"},
		{"$__unixEpochGroup(t, '5m')", "not emulated"},
		{"$__timeFilter()", "missing time column"},
		{"$__timeGroup(t)", "needs a time column and an interval"},
		{"$__timeGroup(t, 'soon')", "interval"},
		{"IN ($nope)", "no variable"},
		{"IN (${station:csv})", "formats"},
		{"IN ([[station]])", "deprecated"},
		{"$__timeFilter", "left unexpanded"},
		{"$__searchFilter", "left unexpanded"},
	} {
		_, err := env.expand(bad.in)
		require.Error(t, err, bad.in)
		assert.Contains(t, err.Error(), bad.want, bad.in)
	}

	assert.Equal(t, "1h", formatInterval(time.Hour))
	assert.Equal(t, "1h", formatInterval(90*time.Minute), "whole units of the largest, as Grafana's")
	assert.Equal(t, "2d", formatInterval(48*time.Hour))
	assert.Equal(t, 15*time.Minute, panelInterval(7*24*time.Hour, 1000, 0), "7 d over 1000 points: 10.08 min, up to a round step")
	assert.Equal(t, time.Hour, panelInterval(7*24*time.Hour, 1000, time.Hour), "no shorter than the panel's minimum")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got, err := parseRelative("now-7d", now)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-7*24*time.Hour), got)
	_, err = parseRelative("now/d", now)
	assert.Error(t, err)
}
