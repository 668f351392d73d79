package satellite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
)

// Token limits.
const (
	maxTokenLen = 8192
	// maxTokenLife bounds a token's stated lifetime, so that a broken identity server
	// cannot make us keep a token for a year.
	maxTokenLife = 24 * time.Hour
	// refreshBefore is how long before its expiry a token is replaced (at most half its
	// life): a request never leaves with a token about to lapse in flight.
	refreshBefore = time.Minute
)

// Token is an OAuth2 access token.
type Token struct {
	Access    string
	ExpiresIn time.Duration
}

// ParseToken decodes an OAuth2 client-credentials token response (RFC 6749 §5.1):
// access_token, token_type Bearer, expires_in in seconds. The token must be printable
// ASCII (it goes into a header) and the lifetime positive.
func ParseToken(body []byte) (Token, error) {
	var v struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Token{}, fmt.Errorf("token response is not JSON: %w", err)
	}
	switch {
	case v.AccessToken == "":
		return Token{}, errors.New("token response has no access_token")
	case len(v.AccessToken) > maxTokenLen:
		return Token{}, fmt.Errorf("access_token of %d bytes, at most %d", len(v.AccessToken), maxTokenLen)
	case v.TokenType != "" && !strings.EqualFold(v.TokenType, "bearer"):
		return Token{}, fmt.Errorf("token_type %q: want Bearer", v.TokenType)
	}
	for _, r := range v.AccessToken {
		if r < 0x21 || r > 0x7e {
			return Token{}, errors.New("access_token has characters a header cannot carry")
		}
	}
	var secs float64
	if err := json.Unmarshal(v.ExpiresIn, &secs); err != nil || !(secs > 0) {
		return Token{}, fmt.Errorf("expires_in %s: want a positive number of seconds", v.ExpiresIn)
	}
	life := maxTokenLife
	if secs < maxTokenLife.Seconds() {
		life = time.Duration(secs * float64(time.Second))
	}
	return Token{Access: v.AccessToken, ExpiresIn: life}, nil
}

// tokens gets and keeps an access token by the client-credentials grant. Safe for
// concurrent use.
type tokens struct {
	url, id, secret string
	api             *apicall.Client
	now             func() time.Time

	mu      sync.Mutex
	current string
	expiry  time.Time // when to replace current
}

// get returns a token valid for a while yet, fetching a new one when the current one is
// near its expiry.
func (t *tokens) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != "" && t.now().Before(t.expiry) {
		return t.current, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {t.id}, "client_secret": {t.secret}}
	var tok Token
	err := t.api.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "application/json")
		}
		return req, err
	}, func(body []byte) error {
		var err error
		tok, err = ParseToken(body)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	t.current = tok.Access
	t.expiry = t.now().Add(tok.ExpiresIn - min(refreshBefore, tok.ExpiresIn/2))
	return t.current, nil
}

// drop forgets token if it is still the current one (the API refused it).
func (t *tokens) drop(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current == token {
		t.current = ""
	}
}
