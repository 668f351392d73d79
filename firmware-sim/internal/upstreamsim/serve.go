package upstreamsim

import "net/http"

// writeJSON sends body as application/json with status, cut in half for FaultMalformed.
func writeJSON(w http.ResponseWriter, status int, body []byte, fault Fault) {
	if fault == FaultMalformed {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
