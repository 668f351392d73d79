package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Publish is a bulk publication at QoS 1: messages 0..Count-1 (Payload(i) makes message
// i) all go to Topic over Conns connections (MQTT 3.1.1, clean sessions), connection c
// sending messages c, c+Conns, c+2·Conns, ... with up to Window of them unacknowledged.
type Publish struct {
	Broker  string // host:port
	Topic   string
	Count   int
	Payload func(i int) ([]byte, error)
	Conns   int
	Window  int
	// ClientID is the prefix of the connections' client ids.
	ClientID string
}

// Run publishes every message and returns when all are acknowledged, or at the first
// failure (a message that could not be made, a connection lost, a publish not acknowledged
// within a minute), or when ctx ends. It uses its own goroutines and connections, all gone
// when it returns.
func (p Publish) Run(ctx context.Context) error {
	if p.Count < 0 || p.Conns < 1 || p.Window < 1 || p.Payload == nil {
		return fmt.Errorf("publish: count %d, conns %d, window %d and a payload function are required", p.Count, p.Conns, p.Window)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for c := range p.Conns {
		wg.Go(func() {
			if err := p.conn(ctx, c); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// ackTimeout bounds the wait for one acknowledgement.
const ackTimeout = time.Minute

func (p Publish) conn(ctx context.Context, c int) error {
	client, err := ConnectMQTT(ctx, p.Broker, fmt.Sprintf("%s-%d", p.ClientID, c))
	if err != nil {
		return err
	}
	defer client.Disconnect(250)
	var pending []paho.Token
	wait := func(tok paho.Token) error {
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				return fmt.Errorf("publish on %s: %w", p.Topic, err)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ackTimeout):
			return fmt.Errorf("publish on %s: no acknowledgement within %s", p.Topic, ackTimeout)
		}
	}
	for i := c; i < p.Count; i += p.Conns {
		if len(pending) == p.Window {
			if err := wait(pending[0]); err != nil {
				return err
			}
			pending = pending[1:]
		}
		body, err := p.Payload(i)
		if err != nil {
			return err
		}
		pending = append(pending, client.Publish(p.Topic, 1, false, body))
	}
	for _, tok := range pending {
		if err := wait(tok); err != nil {
			return err
		}
	}
	return nil
}

// ConnectMQTT connects an MQTT 3.1.1 client with a clean session and no automatic
// reconnection to broker (host:port). The caller must Disconnect it.
func ConnectMQTT(ctx context.Context, broker, clientID string) (paho.Client, error) {
	o := paho.NewClientOptions().
		AddBroker("tcp://" + broker).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(30 * time.Second).
		SetKeepAlive(time.Minute)
	client := paho.NewClient(o)
	// Not cut short by ctx: the attempt ends within its connect timeout, and a client left
	// connecting would have no owner to disconnect it.
	tok := client.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		client.Disconnect(0)
		return nil, fmt.Errorf("mqtt connect to %s: no answer", broker)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("mqtt connect to %s: %w", broker, err)
	}
	if err := ctx.Err(); err != nil {
		client.Disconnect(0)
		return nil, err
	}
	return client, nil
}
