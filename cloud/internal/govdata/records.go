package govdata

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/upstream"
)

// ParseRecords finds the list of records in a CWC or IMD response: the body itself when
// path is "", else the list under the dotted path of object keys. A null or absent list
// is no records; anything else that is not a list of objects is an error.
func ParseRecords(body []byte, path string) ([]Record, error) {
	raw := json.RawMessage(bytes.TrimSpace(body))
	if !json.Valid(raw) {
		return nil, fmt.Errorf("body is not JSON")
	}
	if path != "" {
		for key := range strings.SplitSeq(path, ".") {
			if len(raw) == 0 || raw[0] != '{' {
				return nil, fmt.Errorf("%s: %w: %q is not inside an object", path, errNoRecords, key)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			next, ok := obj[key]
			if !ok {
				return nil, nil
			}
			raw = json.RawMessage(bytes.TrimSpace(next))
		}
	}
	if string(raw) == "null" {
		return nil, nil
	}
	var rs []Record
	if err := json.Unmarshal(raw, &rs); err != nil {
		where := "body"
		if path != "" {
			where = path
		}
		return nil, fmt.Errorf("%s: want a list of records: %w", where, err)
	}
	return rs, nil
}

// fetchRecords reads a CWC or IMD endpoint: the time window since the cursor, for each
// mapped station or all at once, page by page. The cursor is the time of the newest
// reading delivered so far (RFC 3339).
func (c *Client) fetchRecords(ctx context.Context, cursor string) (upstream.Batch, error) {
	now := c.opts.Now()
	from := now.Add(-c.opts.Lookback)
	if cursor != "" {
		if t, err := time.Parse(time.RFC3339Nano, cursor); err == nil {
			from = t.Add(-c.opts.Overlap)
		} else {
			c.log.Warn("ignoring a cursor that is not a time; reading the look-back window", "cursor", cursor)
		}
	}
	b := upstream.Batch{Skipped: upstream.Counts{}}
	stations := []string{""}
	if c.opts.StationParam != "" {
		stations = slices.Sorted(maps.Keys(c.m.Stations))
	}
	for _, code := range stations {
		var prev [sha256.Size]byte
		for page := c.opts.FirstPage; ; page++ {
			rs, digest, err := c.recordsPage(ctx, code, page, from, now)
			if err != nil {
				return upstream.Batch{}, err
			}
			if page > c.opts.FirstPage && digest == prev {
				// An endpoint that ignores the page parameter would be read until
				// max_records.
				return upstream.Batch{}, fmt.Errorf("%s: page %d repeats page %d: the endpoint ignores %s",
					c.opts.Kind, page, page-1, c.opts.PageParam)
			}
			prev = digest
			if b.Records+len(rs) > c.opts.MaxRecords {
				return upstream.Batch{}, fmt.Errorf("%s: more than max_records %d records in one round: shorten the look-back or list fewer stations",
					c.opts.Kind, c.opts.MaxRecords)
			}
			for _, r := range rs {
				c.m.readings(r, &b)
			}
			if c.opts.PageParam == "" || len(rs) < c.opts.PageSize {
				break
			}
		}
	}
	if c.opts.FromParam != "" {
		var newest time.Time
		for _, r := range b.Readings {
			if r.Time.After(newest) && !r.Time.After(now.Add(upstream.FutureSlack)) {
				newest = r.Time
			}
		}
		if prev, err := time.Parse(time.RFC3339Nano, cursor); err == nil && prev.After(newest) {
			newest = prev
		}
		if !newest.IsZero() {
			b.Cursor = newest.UTC().Format(time.RFC3339Nano)
		}
	}
	return b, nil
}

// recordsPage gets one page of one station's (or every station's) records, and a digest
// of the body.
func (c *Client) recordsPage(ctx context.Context, code string, page int, from, to time.Time) ([]Record, [sha256.Size]byte, error) {
	q := url.Values{}
	for k, v := range c.opts.Query {
		q.Set(k, v)
	}
	if c.key != "" {
		q.Set(c.opts.APIKeyParam, c.key)
	}
	if code != "" {
		q.Set(c.opts.StationParam, code)
	}
	if c.opts.PageParam != "" {
		q.Set(c.opts.PageParam, strconv.Itoa(page))
		if c.opts.SizeParam != "" {
			q.Set(c.opts.SizeParam, strconv.Itoa(c.opts.PageSize))
		}
	}
	loc := c.m.Location
	if c.opts.FromParam != "" {
		q.Set(c.opts.FromParam, from.In(loc).Format(c.opts.RangeFormat))
	}
	if c.opts.ToParam != "" {
		q.Set(c.opts.ToParam, to.In(loc).Format(c.opts.RangeFormat))
	}
	var out []Record
	var digest [sha256.Size]byte
	err := c.api.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		u := *c.base
		var req *http.Request
		var err error
		if c.opts.Method == http.MethodPost {
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(q.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		} else {
			u.RawQuery = mergeQuery(u.RawQuery, q)
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		}
		if err == nil {
			req.Header.Set("Accept", "application/json")
		}
		return req, err
	}, func(body []byte) error {
		rs, err := ParseRecords(body, c.opts.RecordsPath)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		out, digest = rs, sha256.Sum256(body)
		return nil
	})
	return out, digest, err
}

// mergeQuery adds q to a URL's own query.
func mergeQuery(raw string, q url.Values) string {
	own, err := url.ParseQuery(raw)
	if err != nil || len(own) == 0 {
		return q.Encode()
	}
	for k, vs := range q {
		own[k] = vs
	}
	return own.Encode()
}
