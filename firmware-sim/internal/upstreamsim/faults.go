package upstreamsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is a way the simulated service misbehaves.
type Fault string

// The faults.
const (
	FaultNone        Fault = ""
	FaultRateLimit   Fault = "429"       // 429 Too Many Requests with Retry-After
	FaultServer      Fault = "500"       // 500 Internal Server Error
	FaultBadGateway  Fault = "502"       // 502 from the gateway in front of the service
	FaultUnavailable Fault = "503"       // 503 Service Unavailable with Retry-After
	FaultSlow        Fault = "slow"      // the answer comes after Config.SlowDelay
	FaultMalformed   Fault = "malformed" // a 200 whose body is cut in half
)

// Faults lists the faults a control request or Config.Fault may name.
func Faults() []Fault {
	return []Fault{FaultRateLimit, FaultServer, FaultBadGateway, FaultUnavailable, FaultSlow, FaultMalformed}
}

// ParseFault resolves a fault name; "" and "none" are no fault.
func ParseFault(s string) (Fault, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "none" {
		return FaultNone, nil
	}
	if f := Fault(s); slices.Contains(Faults(), f) {
		return f, nil
	}
	names := make([]string, 0, len(Faults()))
	for _, f := range Faults() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown fault %q (want one of %s)", s, strings.Join(names, ", "))
}

// FaultConfig is how a simulated service misbehaves besides the faults queued through
// /_sim/fault. Zero values take the defaults.
type FaultConfig struct {
	// Fault hits FaultRate (0 to 1) of the requests at random.
	Fault     Fault
	FaultRate float64
	// SlowDelay is how long FaultSlow holds an answer; default 30s.
	SlowDelay time.Duration
	// RetryAfter is what a 429 asks the client to wait (the service's own unit).
	RetryAfter time.Duration
}

func (c *FaultConfig) withDefaults(retryAfter time.Duration) {
	if f, err := ParseFault(string(c.Fault)); err == nil {
		c.Fault = f // "none" is no fault
	}
	if c.SlowDelay == 0 {
		c.SlowDelay = 30 * time.Second
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = retryAfter
	}
}

func (c FaultConfig) check() []error {
	var errs []error
	if _, err := ParseFault(string(c.Fault)); err != nil {
		errs = append(errs, err)
	}
	if c.FaultRate < 0 || c.FaultRate > 1 {
		errs = append(errs, fmt.Errorf("fault rate %v: want 0 to 1", c.FaultRate))
	}
	if c.SlowDelay < 0 || c.RetryAfter < 0 {
		errs = append(errs, errors.New("slow delay and retry-after must not be negative"))
	}
	return errs
}

// maxQueued bounds the faults waiting in the queue.
const maxQueued = 10000

// queued is a fault waiting for matching requests.
type queued struct {
	Fault  Fault  `json:"kind"`
	Count  int    `json:"count"`
	Path   string `json:"path,omitempty"`
	Offset int    `json:"offset"` // -1: any
}

// faults holds the queued and random faults of one server. Safe for concurrent use.
type faults struct {
	random Fault
	rate   float64
	slow   time.Duration
	// refuse answers an error fault (429, 5xx) the way the service does.
	refuse func(http.ResponseWriter, Fault)

	mu     sync.Mutex
	queue  []queued
	rng    *rand.Rand
	served map[Fault]int
}

func newFaults(c FaultConfig, seed int64, refuse func(http.ResponseWriter, Fault)) *faults {
	return &faults{random: c.Fault, rate: c.FaultRate, slow: c.SlowDelay, refuse: refuse,
		served: map[Fault]int{}, rng: rand.New(rand.NewPCG(uint64(seed), 0x6661756c74))}
}

// intercept takes the fault of a request (at an OGD offset, or -1): an error fault is
// answered here and ok is false; a slow one is held first; the fault is returned for the
// caller to apply to its body (FaultMalformed).
func (f *faults) intercept(w http.ResponseWriter, r *http.Request, offset int) (fault Fault, ok bool) {
	fault = f.next(r.URL.Path, offset)
	switch fault {
	case FaultRateLimit, FaultServer, FaultBadGateway, FaultUnavailable:
		f.refuse(w, fault)
		return fault, false
	case FaultSlow:
		if !hold(r, f.slow) {
			// The client gave up or the server is stopping: no answer at all.
			panic(http.ErrAbortHandler)
		}
	}
	return fault, true
}

// next returns the fault for a request to path (at an OGD offset, or -1), taking it from
// the queue or, failing that, drawing a random one.
func (f *faults) next(path string, offset int) Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.queue {
		q := &f.queue[i]
		if !strings.HasPrefix(path, q.Path) || (q.Offset >= 0 && q.Offset != offset) {
			continue
		}
		fault := q.Fault
		if q.Count--; q.Count == 0 {
			f.queue = slices.Delete(f.queue, i, i+1)
		}
		f.served[fault]++
		return fault
	}
	if f.random != FaultNone && f.rng.Float64() < f.rate {
		f.served[f.random]++
		return f.random
	}
	return FaultNone
}

// Served returns how many requests each fault hit.
func (f *faults) Served() map[Fault]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[Fault]int, len(f.served))
	for k, v := range f.served {
		out[k] = v
	}
	return out
}

// control serves /_sim/fault.
func (f *faults) control(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		f.mu.Lock()
		body, err := json.Marshal(map[string]any{"queue": f.queue, "served": f.served})
		f.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	case http.MethodDelete:
		f.mu.Lock()
		f.queue = nil
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		q, err := parseQueued(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.queue) >= maxQueued {
			http.Error(w, "fault queue full", http.StatusTooManyRequests)
			return
		}
		f.queue = append(f.queue, q)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "GET, POST or DELETE", http.StatusMethodNotAllowed)
	}
}

func parseQueued(r *http.Request) (queued, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		return queued{}, fmt.Errorf("bad form: %w", err)
	}
	var errs []error
	fault, err := ParseFault(r.Form.Get("kind"))
	if err != nil {
		errs = append(errs, err)
	} else if fault == FaultNone {
		errs = append(errs, errors.New("kind is required"))
	}
	q := queued{Fault: fault, Count: 1, Path: r.Form.Get("path"), Offset: -1}
	if s := r.Form.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxQueued {
			errs = append(errs, fmt.Errorf("count %q: want 1 to %d", s, maxQueued))
		}
		q.Count = n
	}
	if s := r.Form.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("offset %q: want a record offset", s))
		}
		q.Offset = n
	}
	return q, errors.Join(errs...)
}

// gatewayPage is the HTML an nginx gateway sends with a 5xx.
func gatewayPage(status int) string {
	title := fmt.Sprintf("%d %s", status, http.StatusText(status))
	return "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
		"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
}

// serveGatewayError answers a 5xx fault the way the nginx gateway in front of a service
// does.
func serveGatewayError(w http.ResponseWriter, fault Fault) {
	status, _ := strconv.Atoi(string(fault))
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	fmt.Fprint(w, gatewayPage(status))
}

// hold waits d or until the request ends; false means it ended (the handler must return
// without an answer).
func hold(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return false
	case <-t.C:
		return true
	}
}
