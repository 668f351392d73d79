package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/bench/internal/fsyncrate"
	"github.com/purehealth/purehealth/bench/internal/harness"
)

// floorDB is the database, beside the cloud's, in which the commit round trip is timed.
const floorDB = "phbench_floor"

// floorPart is one term of the latency floor.
type floorPart struct {
	name    string
	how     string
	samples []time.Duration // sorted; empty for a configured term
	value   time.Duration   // what the floor counts
	info    bool            // printed, not counted
}

// latencyFloor is the least time a reading can take from a sensor to a WebSocket client on
// this machine, whatever the software: the sum of its counted parts, each measured with
// nothing else going on.
type latencyFloor struct {
	parts []floorPart
}

func (f latencyFloor) total() time.Duration {
	var t time.Duration
	for _, p := range f.parts {
		if !p.info {
			t += p.value
		}
	}
	return t
}

// quantile is the q-quantile (0 < q ≤ 1) of sorted by the nearest-rank method, or 0.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// timeEach runs op n times after warm-up runs and returns the durations, sorted.
func timeEach(ctx context.Context, n, warm int, op func(ctx context.Context) error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := range warm + n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		if err := op(ctx); err != nil {
			return nil, err
		}
		if i >= warm {
			out = append(out, time.Since(start))
		}
	}
	slices.Sort(out)
	return out, nil
}

// floorTarget is what the floor is measured against: the run's agent, cloud and database.
type floorTarget struct {
	env      *storeEnv
	dataDir  string // the agent's data_dir
	mqtt     string // the agent's broker, host:port
	station  string
	cloudURL string
	interval time.Duration // the agent's uplink.interval
}

// measureFloor measures the parts of the floor, one after the other, with no load running.
func (b *bench) measureFloor(ctx context.Context, t floorTarget) (latencyFloor, error) {
	n := b.opts.latency.samples
	var f latencyFloor
	add := func(p floorPart) { f.parts = append(f.parts, p) }

	// The agent stores a reading durably before anything reads it from its buffer.
	res, err := fsyncrate.Measure(ctx, t.dataDir, fsyncrate.Fdatasync, b.opts.fsyncDur)
	if err != nil {
		return f, fmt.Errorf("fdatasync: %w", err)
	}
	add(floorPart{name: "agent fsync", value: res.Elapsed / time.Duration(res.Ops),
		how: fmt.Sprintf("4 KiB write + fdatasync in the agent's data_dir (%s), mean of %d in %.1f s",
			fsyncrate.FSType(t.dataDir), res.Ops, res.Elapsed.Seconds())})

	// The cloud commits a batch before it announces it: one INSERT + COMMIT, the least
	// durable transaction, on the same server.
	commits, err := commitRoundTrips(ctx, t.env, n)
	if err != nil {
		return f, fmt.Errorf("commit round trip: %w", err)
	}
	add(floorPart{name: "cloud commit", samples: commits, value: quantile(commits, 0.5),
		how: fmt.Sprintf("INSERT of one row + COMMIT (autocommit) on a pgx connection, same PostgreSQL, fsync and synchronous_commit on; median of %d", n)})

	// The hub reads the new events once it is notified.
	reads, err := eventReads(ctx, t.env, n)
	if err != nil {
		return f, fmt.Errorf("event read: %w", err)
	}
	add(floorPart{name: "fan-out read", samples: reads, value: quantile(reads, 0.5),
		how: fmt.Sprintf("SELECT of the events after the newest id (the hub's read after a notification) on a pgx connection; median of %d", n)})

	// The sensor's message reaches the agent: one MQTT exchange at its broker that does
	// not touch the disk (a PUBACK would count the agent's commit twice).
	client, err := harness.ConnectMQTT(ctx, t.mqtt, "phbench-floor")
	if err != nil {
		return f, err
	}
	defer client.Disconnect(250)
	topic := "purehealth/" + t.station + "/phbench-floor"
	// Each timed operation is two round trips, a subscription and its removal (nothing is
	// published on the topic).
	subs, err := timeEach(ctx, n, 5, func(ctx context.Context) error {
		if err := waitToken(ctx, client.Subscribe(topic, 1, nil)); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		if err := waitToken(ctx, client.Unsubscribe(topic)); err != nil {
			return fmt.Errorf("unsubscribe: %w", err)
		}
		return nil
	})
	if err != nil {
		return f, fmt.Errorf("mqtt round trip: %w", err)
	}
	for i := range subs {
		subs[i] /= 2
	}
	add(floorPart{name: "mqtt round trip", samples: subs, value: quantile(subs, 0.5),
		how: fmt.Sprintf("SUBSCRIBE→SUBACK + UNSUBSCRIBE→UNSUBACK at the agent's broker, halved, MQTT 3.1.1 over loopback; median of %d", n)})

	// For information: a sensor's publish→PUBACK with nothing else going on, which is that
	// round trip plus the agent's whole durable ingest.
	// The values vary so that the agent's flatline rule has nothing to say.
	published := 0
	pubs, err := timeEach(ctx, max(n/4, 10), 2, func(ctx context.Context) error {
		published++
		return waitToken(ctx, client.Publish("purehealth/"+t.station+"/ph", 1, false,
			fmt.Sprintf(`{"value": %.3f, "unit": "pH", "sensor": "phbench-floor"}`, 7.2+float64(published%50)/1000)))
	})
	if err != nil {
		return f, fmt.Errorf("publish round trip: %w", err)
	}
	add(floorPart{name: "mqtt publish→PUBACK", samples: pubs, value: quantile(pubs, 0.5), info: true,
		how: fmt.Sprintf("QoS 1, one at a time, at the idle agent (loopback + the agent's durable ingest, of which the floor counts one fdatasync); median of %d", len(pubs))})

	// The agent's batch reaches the cloud: an HTTP POST over a kept-alive connection, which
	// the cloud answers without a database (no bearer token: 401).
	posts, err := postRoundTrips(ctx, t.cloudURL, n)
	if err != nil {
		return f, fmt.Errorf("http round trip: %w", err)
	}
	add(floorPart{name: "http round trip", samples: posts, value: quantile(posts, 0.5),
		how: fmt.Sprintf("POST /v1/ingest without a token to ph-cloud (answered 401 before any database work), kept-alive connection; median of %d", n)})

	add(floorPart{name: "uplink linger", value: agentLinger,
		how: "the agent's uplink sends a batch this long after a durable append (uplink.interval only paces passes when nothing new is stored)"})
	return f, nil
}

// agentLinger is the agent's uplink linger (agent/internal/uplink DefaultLinger): the batch
// interval that applies while readings arrive.
const agentLinger = 50 * time.Millisecond

func waitToken(ctx context.Context, tok interface {
	Done() <-chan struct{}
	Error() error
}) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("no answer within 30s")
	}
}

// commitRoundTrips times n single-row INSERT transactions in a table of its own, in a
// database of its own on the cloud's server.
func commitRoundTrips(ctx context.Context, env *storeEnv, n int) ([]time.Duration, error) {
	if err := env.pg.CreateDB(ctx, floorDB); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, env.pg.URL(floorDB))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS commit_floor (id bigint NOT NULL)"); err != nil {
		return nil, err
	}
	i := 0
	return timeEach(ctx, n, 10, func(ctx context.Context) error {
		i++
		_, err := conn.Exec(ctx, "INSERT INTO commit_floor (id) VALUES ($1)", i)
		return err
	})
}

// eventReads times n reads of the events after the newest one, as the fan-out hub reads
// them when it is notified.
func eventReads(ctx context.Context, env *storeEnv, n int) ([]time.Duration, error) {
	conn, err := pgx.Connect(ctx, env.url())
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var last int64
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM events").Scan(&last); err != nil {
		return nil, err
	}
	return timeEach(ctx, n, 10, func(ctx context.Context) error {
		rows, err := conn.Query(ctx, `SELECT id, station_id, type, time, data, created_at FROM events
			WHERE id > $1 ORDER BY id LIMIT 1000`, last)
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
}

// postRoundTrips times n POSTs to the cloud's ingest endpoint that it refuses at once.
func postRoundTrips(ctx context.Context, baseURL string, n int) ([]time.Duration, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	return timeEach(ctx, n, 5, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/ingest", strings.NewReader("{}"))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		err = errors.Join(err, resp.Body.Close())
		if err == nil && resp.StatusCode != http.StatusUnauthorized {
			err = fmt.Errorf("POST /v1/ingest without a token: %s, want 401", resp.Status)
		}
		return err
	})
}
