package mqttsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Recorded is one reading to replay: a value a sensor reported at a past time.
type Recorded struct {
	Param  telemetry.Param
	Value  float64
	Time   time.Time
	Sensor string
}

// DefaultReplayBatch is how many readings one replayed message carries: well below the
// agent's 1000 per array and its 64 KiB packet limit (a reading takes about 100 bytes).
const DefaultReplayBatch = 400

// ReplayReport says what a replay did.
type ReplayReport struct {
	Readings int64 // acknowledged
	Messages int64 // acknowledged
	Took     time.Duration
}

// Replay publishes recorded readings, in the order given, as arrays on
// purehealth/<station>/readings (batch readings a message) at QoS 1, however cfg sets
// QoS: a history that is not acknowledged is not delivered. It connects as
// <station>-replay, waiting for the broker with backoff until ctx ends (a station's
// history is published as its agent comes up), keeps as many messages in flight as the
// connection allows and returns once every one is acknowledged. A refused message (MQTT
// 5) or a lost connection ends it with an error: what was acknowledged stays delivered.
func Replay(ctx context.Context, cfg Config, recs []Recorded, batch int, log *slog.Logger) (ReplayReport, error) {
	start := time.Now()
	var rep ReplayReport
	cfg.QoS = 1
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	cfg = cfg.withDefaults()
	if batch <= 0 {
		batch = DefaultReplayBatch
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addr, err := ParseBroker(cfg.Broker)
	if err != nil {
		return rep, err
	}
	sess, err := dialRetry(ctx, cfg, addr, cfg.Station+"-replay", log)
	if err != nil {
		return rep, err
	}
	defer sess.close()
	slots := make(chan struct{}, sess.window())
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		acked    atomic.Int64
		readings atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	topic := BatchTopic(cfg.Station)
	msg := make([]reading, 0, batch)
	for i := 0; i < len(recs) && !failed(); i += batch {
		msg = msg[:0]
		for _, r := range recs[i:min(i+batch, len(recs))] {
			info, _ := telemetry.Info(r.Param)
			msg = append(msg, reading{Param: r.Param, Value: r.Value, Unit: info.Unit, Time: r.Time, Sensor: r.Sensor})
		}
		n := int64(len(msg))
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			fail(ctx.Err())
			continue
		case <-sess.lost():
			fail(errors.New("connection lost"))
			continue
		}
		wg.Add(1)
		sess.send(ctx, topic, encodeBatch(msg), func(o outcome, err error) {
			defer wg.Done()
			defer func() { <-slots }()
			switch {
			case o == outcomeAcked:
				acked.Add(1)
				readings.Add(n)
			case err != nil:
				fail(err)
			default:
				fail(errors.New("refused by the broker"))
			}
		})
	}
	wg.Wait()
	rep.Messages, rep.Readings, rep.Took = acked.Load(), readings.Load(), time.Since(start)
	if firstErr != nil {
		return rep, fmt.Errorf("replay to %s: %d of %d readings acknowledged: %w", addr, rep.Readings, len(recs), firstErr)
	}
	return rep, nil
}

// dialRetry connects, retrying with backoff until it succeeds or ctx ends.
func dialRetry(ctx context.Context, cfg Config, addr, clientID string, log *slog.Logger) (session, error) {
	bo := backoff.New(200*time.Millisecond, 5*time.Second, backoff.Equal)
	for attempt := 1; ; attempt++ {
		var (
			sess session
			err  error
		)
		if cfg.Protocol == MQTT5 {
			sess, err = dial5(ctx, cfg, addr, clientID)
		} else {
			sess, err = dial311(ctx, cfg, addr, clientID)
		}
		if err == nil {
			return sess, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Info("waiting for the broker", "broker", addr, "attempts", attempt, "err", err)
		}
		if err := backoff.Sleep(ctx, bo.Next()); err != nil {
			return nil, err
		}
	}
}
