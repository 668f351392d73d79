// Package liveprobe measures the live path end to end: how long a reading takes from its
// publication at a station agent's MQTT broker to its row being committed in the cloud's
// PostgreSQL.
//
// A Probe publishes one reading at a time, at a steady pace, on
// purehealth/<station>/<param> as a sensor of its own, each with a value no other reading
// of the probe has (Base + i·Step), so the row says which publication it was. It watches
// the database with LISTEN on the cloud's event channel (every ingest commit notifies it),
// and polls as well in case a notification is missed: a row is seen at most PollEvery
// after its commit, and at once when the notification arrives.
//
// A Probe is used by one goroutine at a time; the goroutines Measure starts end before it
// returns.
package liveprobe

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/bench/internal/harness"
)

// Probe values: Base + i·Step for the i-th publication, within the pH class B band
// (6.5–8.5), so that the probe raises no alert at the agent and never repeats a value.
const (
	Base      = 7.0
	Step      = 0.0001
	MaxProbes = 10000
)

// Channel is the PostgreSQL notification channel the cloud's ingest notifies on commit.
const Channel = "ph_events"

// PollEvery is how often the database is read without a notification.
const PollEvery = 100 * time.Millisecond

// Config says where to publish and what to watch.
type Config struct {
	Broker      string // the agent's MQTT listener, host:port
	Station     string
	Sensor      string // a sensor name no other load uses
	DatabaseURL string // the cloud's database
}

// Probe publishes probe readings and watches for their rows.
type Probe struct {
	cfg    Config
	client paho.Client
	conn   *pgx.Conn
	next   int       // index of the next publication
	since  time.Time // before the first publication: rows are looked for from here on
}

// Open connects to the agent's broker and to the database and starts listening. Close
// releases both.
func Open(ctx context.Context, cfg Config) (*Probe, error) {
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("liveprobe: connect to the database: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return nil, errors.Join(fmt.Errorf("liveprobe: listen: %w", err), conn.Close(ctx))
	}
	client, err := harness.ConnectMQTT(ctx, cfg.Broker, "phbench-liveprobe")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("liveprobe: %w", err), conn.Close(ctx))
	}
	// The agent's clock and ours are the same machine's; a minute covers how it may
	// truncate a timestamp.
	return &Probe{cfg: cfg, client: client, conn: conn, since: time.Now().Add(-time.Minute)}, nil
}

// Close disconnects from the broker and the database.
func (p *Probe) Close(ctx context.Context) error {
	p.client.Disconnect(250)
	return p.conn.Close(ctx)
}

// Result is one measurement.
type Result struct {
	Sent int // publications acknowledged by the agent
	// Latencies are publish → row visible in the database, for the rows seen, in
	// publication order.
	Latencies []time.Duration
	Missing   int // acknowledged, but no row within the settle time
}

// Percentile returns the q-quantile (0 < q ≤ 1) of the latencies by the nearest-rank
// method, or 0 without latencies.
func (r Result) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(r.Latencies))
	rank := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Max is the largest latency, or 0.
func (r Result) Max() time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return slices.Max(r.Latencies)
}

// Measure publishes one reading every every at QoS 1 until stop is closed, then waits up
// to settle for the rows of all of them. It returns an error for a publication the agent
// did not acknowledge, a database error, or when ctx ends.
func (p *Probe) Measure(ctx context.Context, every time.Duration, stop <-chan struct{}, settle time.Duration) (Result, error) {
	outer := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu        sync.Mutex
		published = map[int]time.Time{} // index → publish time
		acked     = map[int]bool{}
		seen      = map[int]time.Time{}
		done      = make(chan struct{}) // closed when publishing has ended
	)
	go func() {
		defer close(done)
		if err := p.publish(ctx, every, stop, &mu, published, acked); err != nil {
			cancel(err)
		}
	}()

	var deadline <-chan time.Time // set once publishing has ended
	for ctx.Err() == nil {
		if err := p.wait(ctx); err != nil {
			cancel(err)
			break
		}
		vals, err := p.rows(ctx)
		if err != nil {
			cancel(err)
			break
		}
		now := time.Now()
		mu.Lock()
		for _, v := range vals {
			i := int(math.Round((v - Base) / Step))
			if _, ok := published[i]; ok {
				if _, dup := seen[i]; !dup {
					seen[i] = now
				}
			}
		}
		all := len(seen) == len(published)
		mu.Unlock()
		select {
		case <-done:
			if all {
				cancel(nil)
			} else if deadline == nil {
				deadline = time.After(settle)
			}
		default:
		}
		select {
		case <-deadline:
			cancel(nil)
		default:
		}
	}
	<-done
	if err := outer.Err(); err != nil {
		return Result{}, err
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return Result{}, err
	}
	var r Result
	idx := slices.Sorted(maps.Keys(published))
	for _, i := range idx {
		if !acked[i] {
			continue
		}
		r.Sent++
		if at, ok := seen[i]; ok {
			r.Latencies = append(r.Latencies, at.Sub(published[i]))
		} else {
			r.Missing++
		}
	}
	return r, nil
}

// publish runs in its own goroutine: a publication every every until stop closes.
func (p *Probe) publish(ctx context.Context, every time.Duration, stop <-chan struct{}, mu *sync.Mutex, published map[int]time.Time, acked map[int]bool) error {
	t := time.NewTicker(every)
	defer t.Stop()
	type pending struct {
		i   int
		tok paho.Token
	}
	var inflight []pending
	settle := func(block bool) error {
		for len(inflight) > 0 {
			tok := inflight[0].tok
			if !block {
				select {
				case <-tok.Done():
				default:
					return nil
				}
			} else if !tok.WaitTimeout(time.Minute) {
				return fmt.Errorf("liveprobe: no acknowledgement within a minute for probe reading %d", inflight[0].i)
			}
			if err := tok.Error(); err != nil {
				return fmt.Errorf("liveprobe: publish: %w", err)
			}
			mu.Lock()
			acked[inflight[0].i] = true
			mu.Unlock()
			inflight = inflight[1:]
		}
		return nil
	}
	topic := "purehealth/" + p.cfg.Station + "/ph"
	for {
		if p.next >= MaxProbes {
			return fmt.Errorf("liveprobe: more than %d probe readings", MaxProbes)
		}
		i := p.next
		p.next++
		now := time.Now()
		payload := fmt.Sprintf(`{"value": %s, "unit": "pH", "timestamp": %q, "sensor": %q}`,
			strconv.FormatFloat(Base+float64(i)*Step, 'f', 4, 64), now.UTC().Format(time.RFC3339Nano), p.cfg.Sensor)
		mu.Lock()
		published[i] = now
		mu.Unlock()
		inflight = append(inflight, pending{i, p.client.Publish(topic, 1, false, payload)})
		if err := settle(false); err != nil {
			return err
		}
		select {
		case <-stop:
			return settle(true)
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// wait returns when a notification arrives or PollEvery has passed, or ctx's error.
func (p *Probe) wait(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, PollEvery)
	defer cancel()
	_, err := p.conn.WaitForNotification(wctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("liveprobe: wait for a notification: %w", err)
	}
	return nil
}

// rows returns the values of the probe's rows in the database.
func (p *Probe) rows(ctx context.Context) ([]float64, error) {
	rows, err := p.conn.Query(ctx, `SELECT value FROM measurements
		WHERE station_id = $1 AND param = 'ph' AND time >= $2 AND sensor = $3`,
		p.cfg.Station, p.since, p.cfg.Sensor)
	if err != nil {
		return nil, fmt.Errorf("liveprobe: read probe rows: %w", err)
	}
	vals, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		return nil, fmt.Errorf("liveprobe: read probe rows: %w", err)
	}
	return vals, nil
}
