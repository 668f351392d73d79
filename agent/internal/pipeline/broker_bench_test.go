//go:build unix

package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/broker"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/validate"
	"github.com/purehealth/purehealth/shared/wqi"
)

// BenchmarkBrokerIngest drives the embedded broker, the pipeline and the spool (fsync on, as
// in production) with MQTT 3.1.1 clients in the same process, the load of phbench's
// throughput comparison: 200 connections, QoS 1, at most 16 publishes unacknowledged per
// connection, one JSON reading per message of the shape ph-sim sends, connection i
// publishing parameter i mod 8. It reports acknowledged msgs/s and the process's CPU per
// message, which includes the clients' share; it is there to profile the agent's path
// (-cpuprofile, then focus on the broker, pipeline and spool).
func BenchmarkBrokerIngest(b *testing.B) {
	const (
		station  = "MH-PUNE-001"
		conns    = 200
		inflight = 16
	)
	sp, err := spool.Open(spool.Options{Path: filepath.Join(b.TempDir(), "agent.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	st := state.New(state.Options{Station: station, Method: wqi.BensonKrause, PressureAtm: 1,
		Freshness: func(telemetry.Param) time.Duration { return time.Hour }})
	var outputs brokerOutputs
	alerts, err := alerting.New(alerting.Options{Station: station, Class: criteria.ClassB},
		sp, &outputs, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := New(Options{Station: station}, Deps{Store: store{sp}, Checker: validate.New(validate.Config{}),
		State: st, Alerts: alerts, Clock: syncedClock(true), Outputs: &outputs})
	br, err := broker.New(broker.Options{Station: station, Listen: "127.0.0.1:0", AllowAnonymous: true}, p)
	if err != nil {
		b.Fatal(err)
	}
	outputs.set(br)
	ctx, stop := context.WithCancel(b.Context())
	ran := make(chan error, 1)
	go func() { ran <- br.Run(ctx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			b.Error(err)
		}
	}()
	select {
	case <-br.Ready():
	case err := <-ran:
		b.Fatal(err)
	}

	params := []string{"ph", "do", "bod", "fc", "tds", "temp", "turbidity", "conductivity"}
	units := []string{"pH", "mg/L", "mg/L", "MPN/100mL", "mg/L", "degC", "NTU", "uS/cm"}
	base := []float64{7.4, 6.5, 2.5, 300, 300, 27, 20, 500}
	clients := make([]pahov3.Client, conns)
	for i := range clients {
		opts := pahov3.NewClientOptions().AddBroker("tcp://" + br.Addr().String()).
			SetClientID("bench-" + strconv.Itoa(i)).SetProtocolVersion(4).SetCleanSession(true).
			SetAutoReconnect(false).SetConnectRetry(false)
		c := pahov3.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("connect client %d: %v", i, tok.Error())
		}
		clients[i] = c
		defer c.Disconnect(0)
	}

	b.ResetTimer()
	commits0 := sp.Stats().Commits
	cpu0 := cpuTime(b)
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		k := i % len(params)
		topic := "purehealth/" + station + "/" + params[k]
		sensor := fmt.Sprintf("%s-%03d", params[k], i)
		wg.Go(func() {
			window := make(chan pahov3.Token, inflight)
			for j := range n {
				if len(window) == inflight {
					if tok := <-window; !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
						b.Errorf("publish: %v", tok.Error())
						return
					}
				}
				v := base[k] * (1 + float64(j%7)/100)
				payload := fmt.Sprintf(`{"value":%g,"unit":%q,"timestamp":%q,"sensor":%q}`, v, units[k],
					time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), sensor)
				window <- c.Publish(topic, 1, false, payload)
			}
			close(window)
			for tok := range window {
				if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
					b.Errorf("publish: %v", tok.Error())
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	if got := br.Stats().ReadingsAccepted; got < int64(b.N) {
		b.Fatalf("%d readings accepted, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64(b.N)/float64(max(sp.Stats().Commits-commits0, 1)), "readings/commit")
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// brokerOutputs publishes the pipeline's and the alerts' outputs on the broker, once it
// exists (they need each other).
type brokerOutputs struct {
	mu sync.Mutex
	br *broker.Broker
}

func (o *brokerOutputs) set(br *broker.Broker) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.br = br
}

func (o *brokerOutputs) Publish(topic string, payload []byte, retain bool, qos byte) error {
	o.mu.Lock()
	br := o.br
	o.mu.Unlock()
	if br == nil {
		return nil
	}
	return br.Publish(topic, payload, retain, qos)
}
