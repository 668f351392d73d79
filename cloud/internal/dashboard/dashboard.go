// Package dashboard serves the operator's web dashboard: plain HTML, CSS and JavaScript
// modules embedded in the binary (no build step, nothing loaded from other sites), which
// read the JSON API under /v1 and follow the live WebSocket at /ws.
//
//	GET /                  the page (index.html)
//	GET /static/<file>     its scripts, style sheet and icon
//
// Every response carries a strict Content-Security-Policy (scripts, styles and
// connections to the service's own origin only, no framing) and nosniff. Files are
// served with a strong ETag (their SHA-256) and "Cache-Control: no-cache": a browser
// revalidates each load and gets 304 while the binary is the same, so the modules of one
// release are always loaded together. Anything else under / is 404.
//
// The page's logic is documented in static/app.js, static/logic.js and static/sources.js
// (where each value comes from, the fused WQI); the pure functions of logic.js and
// sources.js have their tests in testdata/logic_test.js, run in a browser.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// handler serves the embedded files. It is immutable after Handler built it.
type handler struct {
	assets map[string]asset // by name under static/
	index  asset
}

// Content types by extension, set explicitly: the platform's MIME tables differ, and a
// module script served with the wrong type does not run.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

// Handler returns the dashboard's handler. It answers GET and HEAD for "/" and
// "/static/<file>", 405 for other methods and 404 for any other path. It is safe for
// concurrent use.
func Handler() http.Handler {
	h := &handler{assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			ctype = "application/octet-stream"
		}
		h.assets[strings.TrimPrefix(p, "static/")] = asset{body: body, ctype: ctype,
			etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		// The files are compiled in: reading them cannot fail at run time.
		panic("dashboard: read embedded files: " + err.Error())
	}
	h.index = h.assets["index.html"]
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy(r.Host))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a, ok := h.lookup(r.URL.Path)
	if !ok {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("ETag", a.etag)
	hdr.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// lookup maps a request path to its file: "/" is the page, "/static/<name>" a file.
func (h *handler) lookup(p string) (asset, bool) {
	if p == "/" {
		return h.index, true
	}
	name, ok := strings.CutPrefix(p, "/static/")
	if !ok || name == "" || name == "index.html" {
		return asset{}, false
	}
	a, ok := h.assets[name]
	return a, ok
}

// hostPattern is a Host header that may be written into the policy as it is: a name or
// an address with an optional port.
var hostPattern = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// contentSecurityPolicy allows only the service's own origin. 'self' covers the
// WebSocket in current browsers (CSP 3); older ones need the ws: and wss: origins of the
// host spelled out, which is done when the Host header is a plain host.
func contentSecurityPolicy(host string) string {
	connect := "'self'"
	if hostPattern.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; " +
		"connect-src " + connect + "; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}
