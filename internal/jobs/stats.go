package jobs

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Stats are one job's runs so far, as an operator reads them in /stats: a forecast round
// that keeps failing or takes most of its interval shows here before anyone reads logs.
type Stats struct {
	Runs            int64      `json:"runs"`
	Failures        int64      `json:"failures"`
	LastStartedAt   *time.Time `json:"last_started_at,omitempty"`
	LastSeconds     float64    `json:"last_seconds"` // of the last run that ended
	IntervalSeconds float64    `json:"interval_seconds"`
	LastError       string     `json:"last_error,omitempty"` // of the last run, if it failed
	Running         bool       `json:"running"`
}

// Recorder keeps the Stats of the jobs it wraps. The zero value is ready to use.
type Recorder struct {
	mu sync.Mutex
	m  map[string]*Stats
}

// Wrap returns j with its runs recorded under j.Name. A run cut short because the service
// is stopping is not a failure.
func (r *Recorder) Wrap(j Job) Job {
	r.mu.Lock()
	if r.m == nil {
		r.m = map[string]*Stats{}
	}
	st := &Stats{IntervalSeconds: j.Interval.Seconds()}
	r.m[j.Name] = st
	r.mu.Unlock()
	run := j.Run
	j.Run = func(ctx context.Context) error {
		start := time.Now()
		r.mu.Lock()
		st.Running, st.LastStartedAt = true, &start
		r.mu.Unlock()
		err := run(ctx)
		r.mu.Lock()
		defer r.mu.Unlock()
		st.Running, st.LastSeconds = false, time.Since(start).Seconds()
		st.Runs++
		st.LastError = ""
		if err != nil && ctx.Err() == nil {
			st.Failures++
			st.LastError = err.Error()
		}
		return err
	}
	return j
}

// Stats returns a copy of every wrapped job's Stats by name.
func (r *Recorder) Stats() map[string]Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Stats, len(r.m))
	for name, st := range maps.All(r.m) {
		out[name] = *st
	}
	return out
}
