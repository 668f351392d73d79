package coapsim

import (
	"sync"
	"time"
)

// ticker runs the CoAP library's periodic work (retransmissions, expiring exchanges,
// inactivity) on a goroutine the server stops and waits for, instead of the library's
// default one that outlives the server by up to four seconds.
type ticker struct {
	every time.Duration
	stop  chan struct{}
	wg    sync.WaitGroup
}

// run is the library's periodic.Func: it calls f every tick until f returns false or the
// ticker is closed.
func (t *ticker) run(f func(now time.Time) bool) {
	t.wg.Go(func() {
		tk := time.NewTicker(t.every)
		defer tk.Stop()
		for {
			select {
			case <-t.stop:
				return
			case now := <-tk.C:
				if !f(now) {
					return
				}
			}
		}
	})
}

// close stops every loop started by run and waits for them.
func (t *ticker) close() {
	close(t.stop)
	t.wg.Wait()
}
