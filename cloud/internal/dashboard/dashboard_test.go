package dashboard

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// embedded lists the files under static/ by name.
func embedded(t *testing.T) []string {
	t.Helper()
	var names []string
	require.NoError(t, fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, strings.TrimPrefix(p, "static/"))
		}
		return err
	}))
	require.Contains(t, names, "index.html")
	return names
}

func TestContentTypes(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, ctype string
	}{
		{"/", "text/html; charset=utf-8"},
		{"/static/app.js", "text/javascript; charset=utf-8"},
		{"/static/logic.js", "text/javascript; charset=utf-8"},
		{"/static/chart.js", "text/javascript; charset=utf-8"},
		{"/static/app.css", "text/css; charset=utf-8"},
		{"/static/favicon.svg", "image/svg+xml"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := get(t, h, http.MethodGet, tc.path, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, tc.ctype, resp.Header.Get("Content-Type"))
			assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		})
	}
}

// Every embedded file is served with its bytes, a type, an ETag and revalidation.
func TestServesEveryEmbeddedFile(t *testing.T) {
	h := Handler()
	for _, name := range embedded(t) {
		t.Run(name, func(t *testing.T) {
			want, err := static.ReadFile("static/" + name)
			require.NoError(t, err)
			target := "/static/" + name
			if name == "index.html" {
				target = "/"
			}
			resp := get(t, h, http.MethodGet, target, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, string(want), body(t, resp))
			assert.NotEqual(t, "application/octet-stream", resp.Header.Get("Content-Type"), "a file type the table does not know")
			assert.Regexp(t, `^"[0-9a-f]{32}"$`, resp.Header.Get("ETag"))
			assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
			assert.NotEmpty(t, resp.Header.Get("Content-Security-Policy"))
		})
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		name, path, host string
		status           int
		connect          string
	}{
		{"page", "/", "cloud.example.org:8080", 200, "connect-src 'self' ws://cloud.example.org:8080 wss://cloud.example.org:8080;"},
		{"asset", "/static/app.js", "dashboard.example.org", 200, "connect-src 'self' ws://dashboard.example.org wss://dashboard.example.org;"},
		{"IPv6", "/", "[::1]:8080", 200, "connect-src 'self' ws://[::1]:8080 wss://[::1]:8080;"},
		{"not found", "/static/nope.js", "cloud", 404, "connect-src 'self' ws://cloud wss://cloud;"},
		// A Host that is not a plain host is not written into the header.
		{"odd host", "/", "evil.org; script-src *", 200, "connect-src 'self';"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			req.Host = tc.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code)
			csp := rec.Header().Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self';", "script-src 'self';", "style-src 'self';",
				"object-src 'none';", "base-uri 'none';", "frame-ancestors 'none'", tc.connect} {
				assert.Contains(t, csp, want)
			}
			assert.NotContains(t, csp, "unsafe-")
			assert.NotContains(t, csp, "evil")
			assert.Equal(t, "no-referrer", rec.Header().Get("Referrer-Policy"), "the page may carry a viewer token in its address")
			assert.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"))
		})
	}
}

func TestNotFound(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/static/", "/static/nope.js", "/static/index.html", "/index.html",
		"/static/../dashboard.go", "/static/static/app.js", "/dashboard.go", "/static", "/v1/unknown",
		"/static/app.js/", "/static/APP.JS", "/ws"} {
		t.Run(p, func(t *testing.T) {
			resp := get(t, h, http.MethodGet, p, nil)
			assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		})
	}
}

func TestMethods(t *testing.T) {
	h := Handler()
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		t.Run(m, func(t *testing.T) {
			resp := get(t, h, m, "/", nil)
			assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
			assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		resp := get(t, h, http.MethodHead, "/static/app.css", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, body(t, resp))
		assert.NotEmpty(t, resp.Header.Get("Content-Length"))
	})
}

func TestRevalidation(t *testing.T) {
	h := Handler()
	first := get(t, h, http.MethodGet, "/static/app.js", nil)
	require.Equal(t, http.StatusOK, first.StatusCode)
	etag := first.Header.Get("ETag")
	require.NotEmpty(t, etag)

	again := get(t, h, http.MethodGet, "/static/app.js", http.Header{"If-None-Match": {etag}})
	assert.Equal(t, http.StatusNotModified, again.StatusCode)
	assert.Empty(t, body(t, again))

	other := get(t, h, http.MethodGet, "/static/app.css", http.Header{"If-None-Match": {etag}})
	assert.Equal(t, http.StatusOK, other.StatusCode, "another file has another ETag")
	assert.NotEqual(t, etag, other.Header.Get("ETag"))
	replica := get(t, Handler(), http.MethodGet, "/static/app.js", nil)
	assert.Equal(t, etag, replica.Header.Get("ETag"), "the ETag is the content's hash, the same in every replica")
}

var (
	attrRef     = regexp.MustCompile(`(?i)\s(?:src|href)\s*=\s*"([^"]*)"`)
	importRef   = regexp.MustCompile(`(?m)^\s*import\s+(?:[^'"]*\sfrom\s+)?['"]([^'"]+)['"]`)
	inlineCode  = regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle\s*=|\son[a-z]+\s*=`)
	urlRef      = regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^'"\s]*`)
	scriptNoSrc = regexp.MustCompile(`(?i)<script(?:(?:\s+[a-z-]+(?:="[^"]*")?)*)>`)
)

// The page refers only to files that are embedded, loads nothing from elsewhere, and has
// no inline script or style (the policy would block it).
func TestIndexReferencesOnlyEmbeddedAssets(t *testing.T) {
	names := embedded(t)
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	index, err := static.ReadFile("static/index.html")
	require.NoError(t, err)
	refs := attrRef.FindAllStringSubmatch(string(index), -1)
	require.NotEmpty(t, refs)
	var assets int
	for _, m := range refs {
		ref := m[1]
		switch {
		case strings.HasPrefix(ref, "#"):
			// A place in the page or a route.
		case strings.HasPrefix(ref, "/static/"):
			assets++
			assert.True(t, has[strings.TrimPrefix(ref, "/static/")], "index.html refers to %s, which is not embedded", ref)
		default:
			t.Errorf("index.html refers to %q: only /static/ files and #anchors are allowed", ref)
		}
	}
	assert.GreaterOrEqual(t, assets, 3, "the page loads its script, style sheet and icon")
	assert.NotRegexp(t, inlineCode, string(index), "inline script, style or event handler in index.html")
	for _, tag := range scriptNoSrc.FindAllString(string(index), -1) {
		assert.Contains(t, tag, ` src="/static/`, "a script element without a src: %s", tag)
	}

	// Module imports resolve to embedded files.
	for _, n := range names {
		if path.Ext(n) != ".js" {
			continue
		}
		src, err := static.ReadFile("static/" + n)
		require.NoError(t, err)
		for _, m := range importRef.FindAllStringSubmatch(string(src), -1) {
			ref := m[1]
			require.True(t, strings.HasPrefix(ref, "./"), "%s imports %q: only ./ files", n, ref)
			assert.True(t, has[path.Clean(path.Join(path.Dir(n), ref))], "%s imports %s, which is not embedded", n, ref)
		}
		for _, u := range urlRef.FindAllString(string(src), -1) {
			assert.Equal(t, "http://www.w3.org/2000/svg", u, "%s refers to another site", n)
		}
	}
}

// Any request path gets a clean answer: a file's exact bytes, 304, 404 or 405, never
// an error or a file from outside static/.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{"/", "/static/app.js", "/static/../dashboard.go", "/static/%2e%2e/x",
		"/static/", "//static/app.js", "/static/app.js?x=1", "/static/favicon.svg#x", "/\x00"} {
		f.Add(s)
	}
	h := Handler()
	files := map[string]bool{}
	require.NoError(f, fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, rerr := static.ReadFile(p)
			if rerr != nil {
				return rerr
			}
			files[string(b)] = true
		}
		return err
	}))
	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.NewRequest(http.MethodGet, "http://cloud"+target, nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if !files[rec.Body.String()] {
				t.Fatalf("%q answered 200 with bytes that are not an embedded file", target)
			}
		case http.StatusNotFound, http.StatusNotModified:
		default:
			t.Fatalf("%q answered %d", target, rec.Code)
		}
	})
}
