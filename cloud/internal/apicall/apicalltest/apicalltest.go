// Package apicalltest serves HTTP requests in memory for tests that run under
// testing/synctest, where a real socket would keep the bubble's clock from advancing: the
// handler (a simulator's or a recorded-response replay) runs in a goroutine of the
// caller's bubble and the request's context ends it like a closed connection.
package apicalltest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
)

// Client returns an HTTP client whose requests h serves in memory.
func Client(h http.Handler) *http.Client {
	return &http.Client{Transport: transport{h}}
}

type transport struct{ h http.Handler }

// RoundTrip serves req with the handler in a new goroutine and returns its response once
// the handler returns, or the request context's error if that ends first (the handler
// sees the same context end and returns).
func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// The server side reads its own copy of the body, as it would from a socket.
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	sreq := req.Clone(req.Context())
	sreq.Body = io.NopCloser(bytes.NewReader(body))
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		t.h.ServeHTTP(rec, sreq)
	}()
	select {
	case p := <-done:
		if p != nil && p != http.ErrAbortHandler {
			panic(p)
		}
		if p == http.ErrAbortHandler {
			return nil, io.ErrUnexpectedEOF
		}
	case <-req.Context().Done():
		<-done
		return nil, req.Context().Err()
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
