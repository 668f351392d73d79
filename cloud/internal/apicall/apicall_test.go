package apicall

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/apicall/apicalltest"
)

// script answers the n-th request with steps[n] (the last step repeats).
type script struct {
	steps []func(w http.ResponseWriter, r *http.Request)
	n     atomic.Int64
	at    []time.Time // when each request came, in the bubble's clock
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(s.n.Add(1)) - 1
	s.at = append(s.at, time.Now())
	s.steps[min(i, len(s.steps)-1)](w, r)
}

func status(code int, body string, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

func get(url string) Request {
	return func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}
}

func newClient(h http.Handler, o Options) *Client {
	o.HTTPClient = apicalltest.Client(h)
	if o.Rate == 0 {
		o.Rate = -1
	}
	return New(o, nil)
}

func TestRetriesServerErrorsThenSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []func(http.ResponseWriter, *http.Request){
			status(502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"),
			status(503, `{"error":"Service Unavailable"}`),
			status(200, `{"ok":true}`),
		}}
		c := newClient(s, Options{BackoffBase: time.Second, BackoffMax: 4 * time.Second})
		var got string
		err := c.Do(t.Context(), get("https://api.example/resource/x"), func(b []byte) error {
			got = string(b)
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, `{"ok":true}`, got)
		assert.Equal(t, Stats{Requests: 3, Retries: 2}, c.Stats())
	})
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		millis bool
		header string
		want   time.Duration
	}{
		{"seconds as HTTP defines them", false, "30", 30 * time.Second},
		{"milliseconds as Copernicus sends them", true, "1500", 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &script{steps: []func(http.ResponseWriter, *http.Request){
					status(429, `{"status":429,"reason":"Too Many Requests","message":"slow down","code":"RATE_LIMIT_EXCEEDED"}`,
						"Retry-After", tt.header),
					status(200, `{}`),
				}}
				// Backoff alone would wait at most 100 ms.
				c := newClient(s, Options{BackoffBase: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
					RetryAfterMillis: tt.millis})
				require.NoError(t, c.Do(t.Context(), get("https://sh.example/api"), nil))
				require.Len(t, s.at, 2)
				wait := s.at[1].Sub(s.at[0])
				assert.GreaterOrEqual(t, wait, tt.want, "the retry waited for Retry-After")
				assert.Less(t, wait, tt.want+time.Second, "and not much longer")
				assert.Equal(t, int64(1), c.Stats().RateLimited)
			})
		})
	}
}

func TestRateLimitedToTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []func(http.ResponseWriter, *http.Request){
			status(429, `{"error":{"status":429,"reason":"Too Many Requests","message":"You have exceeded the rate limit","code":"RATE_LIMIT_EXCEEDED"}}`,
				"Retry-After", "2000"),
		}}
		c := newClient(s, Options{Attempts: 3, RetryAfterMillis: true, BackoffBase: 10 * time.Millisecond})
		err := c.Do(t.Context(), get("https://sh.example/api/v1/statistics"), nil)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrRateLimited)
		assert.Contains(t, err.Error(), "RATE_LIMIT_EXCEEDED: You have exceeded the rate limit")
		assert.Contains(t, err.Error(), "after 3 attempts")
		assert.EqualValues(t, 3, s.n.Load())
	})
}

func TestRefusalsAreNotRetriedAndHideSecrets(t *testing.T) {
	tests := []struct {
		code int
		body string
		want error
		msg  string
	}{
		{400, `{"error": "Authorization field missing"}`, ErrRejected, "Authorization field missing"},
		{403, `{"error": "Key not authorised"}`, ErrUnauthorized, "Key not authorised"},
		{401, `{"error":"invalid_client","error_description":"Invalid client or Invalid client credentials"}`,
			ErrUnauthorized, "invalid_client: Invalid client or Invalid client credentials"},
		{404, `<html><title>404 Not Found</title></html>`, ErrNotFound, "404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &script{steps: []func(http.ResponseWriter, *http.Request){status(tt.code, tt.body)}}
				c := newClient(s, Options{Secrets: []string{"api-key"}})
				err := c.Do(t.Context(), get("https://api.data.gov.in/resource/abc?api-key=s3cret&offset=0"), nil)
				require.Error(t, err)
				assert.ErrorIs(t, err, tt.want)
				var se *StatusError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, tt.code, se.Status)
				assert.Equal(t, tt.msg, se.Message)
				assert.NotContains(t, err.Error(), "s3cret")
				assert.Contains(t, err.Error(), "api-key=REDACTED")
				assert.EqualValues(t, 1, s.n.Load(), "a refusal is final")
			})
		})
	}
}

func TestMalformedBodiesAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []func(http.ResponseWriter, *http.Request){
			status(200, `{"records":[{"a":`),
			status(200, `{"records":[]}`),
		}}
		c := newClient(s, Options{BackoffBase: time.Second})
		calls := 0
		err := c.Do(t.Context(), get("https://x.example/"), func(b []byte) error {
			calls++
			if !strings.HasSuffix(string(b), "}") {
				return errors.New("truncated")
			}
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, 2, calls)

		s = &script{steps: []func(http.ResponseWriter, *http.Request){status(200, `garbage`)}}
		c = newClient(s, Options{Attempts: 2, BackoffBase: time.Second})
		err = c.Do(t.Context(), get("https://x.example/p?offset=200"), func([]byte) error { return errors.New("not JSON") })
		assert.ErrorIs(t, err, ErrMalformed)
		assert.ErrorContains(t, err, "offset=200")
		assert.ErrorContains(t, err, "not JSON")
	})
}

func TestTooLargeIsFinal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []func(http.ResponseWriter, *http.Request){status(200, strings.Repeat("x", 2000))}}
		c := newClient(s, Options{MaxBody: 1000})
		err := c.Do(t.Context(), get("https://x.example/"), func([]byte) error {
			t.Error("an oversized body must not be decoded")
			return nil
		})
		assert.ErrorIs(t, err, ErrTooLarge)
		assert.EqualValues(t, 1, s.n.Load())
	})
}

func TestAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []func(http.ResponseWriter, *http.Request){
			func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(time.Hour):
				}
			},
			status(200, "{}"),
		}}
		c := newClient(s, Options{Timeout: 5 * time.Second, BackoffBase: time.Second})
		start := time.Now()
		require.NoError(t, c.Do(t.Context(), get("https://slow.example/"), nil))
		assert.Less(t, time.Since(start), 10*time.Second, "the slow attempt was cut at its timeout")
		assert.EqualValues(t, 2, s.n.Load())
	})
}

func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []func(http.ResponseWriter, *http.Request){status(200, "{}")}}
		c := newClient(s, Options{Rate: 2})
		start := time.Now()
		for range 5 {
			require.NoError(t, c.Do(t.Context(), get("https://x.example/"), nil))
		}
		assert.Equal(t, 2*time.Second, time.Since(start), "5 requests at 2/s: the first at once, then every 500 ms")
	})
}

func TestContextEndsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []func(http.ResponseWriter, *http.Request){status(503, "down")}}
		c := newClient(s, Options{Attempts: 10, BackoffBase: time.Minute, BackoffMax: time.Minute})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		err := c.Do(ctx, get("https://x.example/"), nil)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, "503", "the last failure is kept for the log")
	})
}

// A real socket: the transport's own error must not leak the secret either.
func TestTransportErrorHidesSecrets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	addr := srv.URL
	srv.Close() // a closed port on 127.0.0.1
	c := New(Options{Attempts: 2, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, Rate: -1,
		Secrets: []string{"api-key"}}, nil)
	err := c.Do(t.Context(), get(addr+"/resource/r?api-key=s3cret"), nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestMessage(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"error": "Key not authorised"}`, "Key not authorised"},
		{`{"error":{"status":400,"reason":"Bad Request","message":"Invalid evalscript","code":"COMMON_BAD_PAYLOAD"}}`,
			"COMMON_BAD_PAYLOAD: Invalid evalscript"},
		{`{"status":"error","message":"Resource not found"}`, "Resource not found"},
		{"<html><head><title>504 Gateway Time-out</title></head></html>", "504 Gateway Time-out"},
		{"plain\ntext\x00 with\tcontrols", "plain text with controls"},
		{"", ""},
		{strings.Repeat("é", 400), strings.Repeat("é", 150) + "…"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Message([]byte(tt.body)), "%q", tt.body)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	require.NoError(t, os.WriteFile(file, []byte("  k3y\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, make([]byte, MaxSecretBytes+1), 0o600))

	got, err := ReadSecret("api_key", "inline", "")
	require.NoError(t, err)
	assert.Equal(t, "inline", got)
	got, err = ReadSecret("api_key", "", file)
	require.NoError(t, err)
	assert.Equal(t, "k3y", got)
	for _, tt := range []struct{ value, file, want string }{
		{"a", file, "api_key and api_key_file are exclusive"},
		{"", "", "api_key or api_key_file is required"},
		{"", empty, "is empty"},
		{"", filepath.Join(dir, "missing"), "api_key_file:"},
		{"", dir, "is not a regular file"},
		{"", os.DevNull, "is not a regular file"},
		{"", big, "is larger than 65536 bytes"},
	} {
		_, err := ReadSecret("api_key", tt.value, tt.file)
		assert.ErrorContains(t, err, tt.want)
	}
}
