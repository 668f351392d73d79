package pipeline

import (
	"sync"
	"time"
)

// rateWindow is about how long the ingest rate is smoothed over.
const rateWindow = time.Minute

// rateMeter estimates accepted readings a second from samples of the accepted count.
type rateMeter struct {
	mu       sync.Mutex
	accepted uint64
	at       time.Time
	perS     float64
}

// SampleRate updates the estimate of accepted readings a second, from the count at now.
// The agent samples every few seconds; the estimate follows about a minute of samples.
func (p *Pipeline) SampleRate(now time.Time) {
	r := &p.rate
	acc := p.accepted.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() {
		if dt := now.Sub(r.at).Seconds(); dt > 0 {
			inst := float64(acc-r.accepted) / dt
			r.perS += (inst - r.perS) * min(1, dt/rateWindow.Seconds())
			if r.perS < 1e-6 {
				r.perS = 0
			}
		}
	}
	r.accepted, r.at = acc, now
}

// Rate is the smoothed number of readings accepted a second (0 before two samples).
func (p *Pipeline) Rate() float64 {
	p.rate.mu.Lock()
	defer p.rate.mu.Unlock()
	return p.rate.perS
}
