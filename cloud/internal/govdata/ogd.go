package govdata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/purehealth/purehealth/cloud/internal/upstream"
)

// Page is one page of a data.gov.in OGD resource.
type Page struct {
	Status      string
	Message     string
	Title       string
	UpdatedDate string // updated_date: when the resource was last published
	Updated     string // updated: the same as a Unix time
	Total       int    // records matching the request's filters, all pages
	Count       int    // records in this page
	Limit       int
	Offset      int
	Fields      []Field // the resource's schema
	Records     []Record
}

// Field describes one field of a resource.
type Field struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"` // keyword, double, date
}

// flexInt reads a count that the gateway prints as a number (total, count) or as a
// string (limit, offset).
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		return nil
	}
	if u, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(u)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a count, got %.40s", string(b))
	}
	*f = flexInt(n)
	return nil
}

// flexText reads a string or a number as text (updated is a Unix time number).
type flexText string

func (f *flexText) UnmarshalJSON(b []byte) error {
	if s, ok := text(b); ok {
		*f = flexText(s)
	}
	return nil
}

// ParsePage decodes an OGD page and checks that it agrees with itself: records and count,
// and no more records than limit when the page states one.
func ParsePage(body []byte) (*Page, error) {
	var env struct {
		Status      string          `json:"status"`
		Message     string          `json:"message"`
		Title       string          `json:"title"`
		UpdatedDate flexText        `json:"updated_date"`
		Updated     flexText        `json:"updated"`
		Total       flexInt         `json:"total"`
		Count       flexInt         `json:"count"`
		Limit       flexInt         `json:"limit"`
		Offset      flexInt         `json:"offset"`
		Fields      []Field         `json:"field"`
		Records     json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("page is not an OGD envelope: %w", err)
	}
	p := &Page{Status: env.Status, Message: env.Message, Title: env.Title,
		UpdatedDate: string(env.UpdatedDate), Updated: string(env.Updated),
		Total: int(env.Total), Count: int(env.Count), Limit: int(env.Limit), Offset: int(env.Offset),
		Fields: env.Fields}
	if p.Status != "ok" {
		// An error status carries no records to check.
		return p, nil
	}
	if rs := bytes.TrimSpace(env.Records); len(rs) > 0 && string(rs) != "null" {
		if err := json.Unmarshal(rs, &p.Records); err != nil {
			return nil, fmt.Errorf("records: want a list of objects: %w", err)
		}
	}
	switch {
	case p.Count != len(p.Records):
		return nil, fmt.Errorf("count says %d records, the page has %d", p.Count, len(p.Records))
	case p.Limit > 0 && len(p.Records) > p.Limit:
		return nil, fmt.Errorf("%d records in a page of limit %d", len(p.Records), p.Limit)
	case p.Offset+len(p.Records) > p.Total:
		return nil, fmt.Errorf("records %d to %d beyond the total of %d", p.Offset, p.Offset+len(p.Records), p.Total)
	}
	return p, nil
}

// stamp is the cursor of an OGD resource: its publication time as the gateway states it.
func (p *Page) stamp() string {
	if p.UpdatedDate == "" && p.Updated == "" {
		return ""
	}
	return p.UpdatedDate + "|" + p.Updated
}

// fetchOGD reads the resource, or each mapped station's part of it.
func (c *Client) fetchOGD(ctx context.Context, cursor string) (upstream.Batch, error) {
	b := upstream.Batch{Skipped: upstream.Counts{}}
	filters := []map[string]string{c.opts.Filters}
	if c.opts.FilterStations {
		filters = filters[:0]
		for _, code := range slices.Sorted(maps.Keys(c.m.Stations)) {
			f := maps.Clone(c.opts.Filters)
			if f == nil {
				f = map[string]string{}
			}
			f[c.m.StationField] = code
			filters = append(filters, f)
		}
	}
	stamp := ""
	for i, f := range filters {
		unchanged, s, err := c.pageThrough(ctx, f, cursor, i == 0, &b)
		if err != nil {
			return upstream.Batch{}, err
		}
		if unchanged {
			return upstream.Batch{Unchanged: true, Cursor: cursor, Skipped: upstream.Counts{}}, nil
		}
		switch {
		case i == 0:
			stamp = s
		case s != stamp:
			return upstream.Batch{}, fmt.Errorf("resource %s was republished between stations (%q, then %q); the next round reads it again",
				c.opts.ResourceID, stamp, s)
		}
	}
	b.Cursor = stamp
	return b, nil
}

// pageThrough reads every page of one filtered view of the resource into b. On the first
// view it checks the schema and, when the resource's stamp equals cursor, stops at the
// first page and reports it unchanged.
func (c *Client) pageThrough(ctx context.Context, filters map[string]string, cursor string, first bool, b *upstream.Batch) (unchanged bool, stamp string, err error) {
	offset := 0
	for page := 0; ; page++ {
		p, err := c.ogdPage(ctx, filters, offset)
		if err != nil {
			return false, "", err
		}
		if page == 0 {
			stamp = p.stamp()
			if first && cursor != "" && stamp == cursor {
				return true, stamp, nil
			}
			if first {
				if err := c.checkSchema(p.Fields); err != nil {
					return false, "", err
				}
			}
			if b.Records+p.Total > c.opts.MaxRecords {
				return false, "", fmt.Errorf("resource %s%s has %d records, more than max_records %d: add filters or filter_stations",
					c.opts.ResourceID, describe(filters), p.Total, c.opts.MaxRecords)
			}
		} else if s := p.stamp(); s != stamp {
			return false, "", fmt.Errorf("resource %s was republished while paging (%q, then %q); the next round reads it again",
				c.opts.ResourceID, stamp, s)
		}
		if p.Offset != offset {
			return false, "", fmt.Errorf("resource %s: asked for offset %d, the page says %d", c.opts.ResourceID, offset, p.Offset)
		}
		for _, r := range p.Records {
			c.m.readings(r, b)
		}
		offset += len(p.Records)
		switch {
		case offset >= p.Total:
			return false, stamp, nil
		case len(p.Records) == 0:
			return false, "", fmt.Errorf("resource %s%s ended at offset %d before its total of %d",
				c.opts.ResourceID, describe(filters), offset, p.Total)
		}
	}
}

// checkSchema makes sure the fields the mapping reads exist, when the resource lists its
// fields: a misspelt field would otherwise look like a station that never measures
// anything.
func (c *Client) checkSchema(fields []Field) error {
	if len(fields) == 0 {
		return nil
	}
	have := map[string]bool{}
	ids := make([]string, 0, len(fields))
	for _, f := range fields {
		have[f.ID] = true
		ids = append(ids, f.ID)
	}
	var missing []string
	for _, f := range c.m.fields() {
		head, _, _ := strings.Cut(f, ".")
		if !have[f] && !have[head] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("resource %s has no field %s (its fields: %s)", c.opts.ResourceID,
			strings.Join(missing, ", "), strings.Join(ids, ", "))
	}
	return nil
}

// ogdPage gets and decodes one page. An envelope whose status is not "ok" is an error
// naming its message.
func (c *Client) ogdPage(ctx context.Context, filters map[string]string, offset int) (*Page, error) {
	u := c.base.JoinPath("resource", c.opts.ResourceID)
	q := url.Values{}
	q.Set(c.opts.APIKeyParam, c.key)
	q.Set("format", "json")
	q.Set("offset", strconv.Itoa(offset))
	q.Set("limit", strconv.Itoa(c.opts.PageSize))
	for k, v := range filters {
		q.Set("filters["+k+"]", v)
	}
	u.RawQuery = q.Encode()
	var page *Page
	err := c.api.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err == nil {
			req.Header.Set("Accept", "application/json")
		}
		return req, err
	}, func(body []byte) error {
		p, err := ParsePage(body)
		if err != nil {
			return fmt.Errorf("page at offset %d: %w", offset, err)
		}
		page = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	if page.Status != "ok" {
		return nil, fmt.Errorf("resource %s: status %q: %s", c.opts.ResourceID, page.Status, page.Message)
	}
	return page, nil
}

func describe(filters map[string]string) string {
	if len(filters) == 0 {
		return ""
	}
	parts := make([]string, 0, len(filters))
	for _, k := range slices.Sorted(maps.Keys(filters)) {
		parts = append(parts, k+"="+filters[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// errNoRecords marks a records path that leads nowhere.
var errNoRecords = errors.New("no records list")
