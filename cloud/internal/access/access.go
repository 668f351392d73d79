// Package access decides who may do what in ph-cloud's HTTP service, in one place: which
// requests need a token, which roles a token must have, and how a token is presented.
//
// Tokens are bearer tokens (Authorization: Bearer), or ?token= on the WebSocket paths,
// where browsers cannot set headers. A token belongs to a station (role station: it may
// only ingest), or to a person or tool (roles lab, viewer, operator, made with `ph-cloud
// token add`); the SHA-256 hashes listed in the configuration's viewer_tokens_sha256 are
// viewer tokens too. With RequireViewer every read path needs a viewer or operator token;
// without it reading is open. Acting (acknowledging alerts, managing stations) always
// needs an operator token.
package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

// Authenticator maps a token to who holds it (*store.Store); store.ErrNotFound when it is
// nobody's.
type Authenticator interface {
	AuthenticateToken(ctx context.Context, token string) (store.Principal, error)
}

// Policy is what the configuration says.
type Policy struct {
	// RequireViewer makes every read path need a viewer or operator token.
	RequireViewer bool
	// ViewerTokens are SHA-256 hashes of further viewer tokens (viewer_tokens_sha256).
	ViewerTokens [][sha256.Size]byte
	// MetricsTokens, when set, are the SHA-256 hashes of the tokens that may scrape
	// /metrics (instead of a viewer token).
	MetricsTokens [][sha256.Size]byte
}

// Guard applies a Policy. It is safe for concurrent use.
type Guard struct {
	auth   Authenticator
	policy Policy
	log    *slog.Logger

	refused, unavailable atomic.Int64
}

// New returns a Guard.
func New(auth Authenticator, p Policy, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Guard{auth: auth, policy: p, log: log}
}

// Stats counts requests the guard refused (401/403) and could not check (503).
type Stats struct {
	Refused     int64 `json:"refused"`
	Unavailable int64 `json:"unavailable"`
}

// Stats returns the counters.
func (g *Guard) Stats() Stats {
	return Stats{Refused: g.refused.Load(), Unavailable: g.unavailable.Load()}
}

// MaxTokenLen bounds a presented token before any work is done with it.
const MaxTokenLen = 512

// Token returns the bearer token of r; with query, ?token= is accepted too.
func Token(r *http.Request, query bool) string {
	if scheme, t, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " "); ok &&
		strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(t)
	}
	if query {
		return r.URL.Query().Get("token")
	}
	return ""
}

// Errors of Who.
var (
	ErrNoToken   = errors.New("a token is required (Authorization: Bearer)")
	ErrBadToken  = errors.New("unknown token")
	ErrForbidden = errors.New("this token may not do that")
)

// Who returns the principal of the token r presents. A hash listed in ViewerTokens is a
// viewer named "viewer".
func (g *Guard) Who(r *http.Request, query bool) (store.Principal, error) {
	token := Token(r, query)
	if token == "" {
		return store.Principal{}, ErrNoToken
	}
	if len(token) > MaxTokenLen {
		return store.Principal{}, ErrBadToken
	}
	if listed(token, g.policy.ViewerTokens) {
		return store.Principal{Name: "viewer", Role: store.RoleViewer}, nil
	}
	p, err := g.auth.AuthenticateToken(r.Context(), token)
	if errors.Is(err, store.ErrNotFound) {
		return store.Principal{}, ErrBadToken
	}
	return p, err
}

func listed(token string, hashes [][sha256.Size]byte) bool {
	if len(hashes) == 0 {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	ok := 0
	for _, h := range hashes {
		ok |= subtle.ConstantTimeCompare(sum[:], h[:])
	}
	return ok == 1
}

// readers are the roles that may read.
var readers = []store.Role{store.RoleViewer, store.RoleOperator}

// Read guards a read path: open unless RequireViewer, then a viewer or operator token.
// query allows ?token= (the WebSocket paths).
func (g *Guard) Read(next http.Handler, query bool) http.Handler {
	if !g.policy.RequireViewer {
		return next
	}
	return g.Require(next, query, readers...)
}

// Metrics guards /metrics: one of MetricsTokens when the configuration lists any,
// otherwise as any read path.
func (g *Guard) Metrics(next http.Handler) http.Handler {
	if len(g.policy.MetricsTokens) == 0 {
		return g.Read(next, false)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !listed(Token(r, false), g.policy.MetricsTokens) {
			g.deny(w, http.StatusUnauthorized, ErrBadToken)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Require serves next only to a token with one of roles; the principal is in the
// request's context (From).
func (g *Guard) Require(next http.Handler, query bool, roles ...store.Role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := g.Who(r, query)
		switch {
		case errors.Is(err, ErrNoToken), errors.Is(err, ErrBadToken):
			g.deny(w, http.StatusUnauthorized, err)
			return
		case err != nil:
			g.unavailable.Add(1)
			g.log.Warn("check a token", "err", err)
			w.Header().Set("Retry-After", "5")
			g.writeError(w, http.StatusServiceUnavailable, "tokens cannot be checked now, retry later")
			return
		case !slices.Contains(roles, p.Role):
			g.deny(w, http.StatusForbidden, ErrForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

type principalKey struct{}

// From returns the principal Require admitted for the request's context.
func From(ctx context.Context) (store.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(store.Principal)
	return p, ok
}

func (g *Guard) deny(w http.ResponseWriter, status int, err error) {
	g.refused.Add(1)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ph-cloud"`)
	}
	g.writeError(w, status, err.Error())
}

func (g *Guard) writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg}); err != nil {
		g.log.Debug("write refusal", "err", err)
	}
}
