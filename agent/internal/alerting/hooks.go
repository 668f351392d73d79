package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHookTimeout bounds a hook command that has no Timeout of its own.
const DefaultHookTimeout = 10 * time.Second

// Hook is a local command run on alert transitions (a siren, an SMS modem script). The event
// JSON arrives on its standard input and in PH_ALERT_* environment variables.
type Hook struct {
	Command []string
	On      []Transition  // empty: every transition
	Timeout time.Duration // 0: DefaultHookTimeout
}

// Hooks runs hook commands one at a time from a bounded queue, so a slow or hanging script
// never holds up ingest or alerting. When the queue is full, events are dropped for the
// hooks (they are still persisted, published and logged) and counted.
//
// Notify and Set are safe for concurrent use. Run owns the single worker goroutine.
type Hooks struct {
	mu      sync.Mutex
	hooks   []Hook
	queue   chan Event
	log     *slog.Logger
	dropped atomic.Uint64
	failed  atomic.Uint64
	ran     atomic.Uint64
}

// hookQueue bounds the events waiting for hooks.
const hookQueue = 64

// NewHooks returns a runner for hooks.
func NewHooks(hooks []Hook, log *slog.Logger) *Hooks {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hooks{queue: make(chan Event, hookQueue), log: log}
	h.Set(hooks)
	return h
}

// Set replaces the hooks. Events queued already run the new ones; a hook running now
// finishes first.
func (h *Hooks) Set(hooks []Hook) {
	hooks = slices.Clone(hooks)
	for i := range hooks {
		if hooks[i].Timeout <= 0 {
			hooks[i].Timeout = DefaultHookTimeout
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hooks = hooks
}

func (h *Hooks) current() []Hook {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hooks
}

// Notify queues ev for the hooks without blocking.
func (h *Hooks) Notify(ev Event) {
	if len(h.current()) == 0 {
		return
	}
	select {
	case h.queue <- ev:
	default:
		h.dropped.Add(1)
		h.log.Warn("alert hook queue full; event not passed to hooks", "id", ev.ID, "transition", ev.Transition)
	}
}

// Run executes queued events until ctx ends.
func (h *Hooks) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-h.queue:
			for _, hk := range h.current() {
				if len(hk.On) > 0 && !slices.Contains(hk.On, ev.Transition) {
					continue
				}
				h.run(ctx, hk, ev)
			}
		}
	}
}

func (h *Hooks) run(ctx context.Context, hk Hook, ev Event) {
	payload, err := json.Marshal(ev)
	if err != nil {
		h.log.Error("encode alert for hook", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, hk.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, hk.Command[0], hk.Command[1:]...)
	cmd.Stdin = bytes.NewReader(payload)
	cmd.Env = append(os.Environ(),
		"PH_STATION="+ev.Station,
		"PH_ALERT_ID="+strconv.FormatUint(ev.ID, 10),
		"PH_ALERT_TRANSITION="+string(ev.Transition),
		"PH_ALERT_RULE="+ev.Rule,
		"PH_ALERT_SEVERITY="+string(ev.Severity),
		"PH_ALERT_STATE="+string(ev.State),
		"PH_ALERT_PARAM="+ev.Param,
		"PH_ALERT_MESSAGE="+ev.Message,
	)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	h.ran.Add(1)
	if err != nil {
		h.failed.Add(1)
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", hk.Timeout)
		}
		h.log.Warn("alert hook failed", "command", hk.Command[0], "id", ev.ID, "err", err,
			"output", truncate(out, 512))
		return
	}
	h.log.Debug("alert hook ran", "command", hk.Command[0], "id", ev.ID)
}

// HookStats are the runner's counters.
type HookStats struct{ Ran, Failed, Dropped uint64 }

// Stats returns the runner's counters.
func (h *Hooks) Stats() HookStats {
	return HookStats{Ran: h.ran.Load(), Failed: h.failed.Load(), Dropped: h.dropped.Load()}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
