package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary stand in for phbench as the fan-out comparison's reference
// hub (`phbench fanout-peer`), which the benchmark starts by re-executing itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == peerCommand {
		// As main does: SIGTERM is the benchmark's way of stopping the peer cleanly.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := exitCode(runPeer(ctx, os.Args[2:], os.Stderr))
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestFanoutOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, f fanoutOptions)
		wantErr string
	}{
		{"full defaults", nil, func(t *testing.T, f fanoutOptions) {
			assert.Equal(t, fanoutOptions{clients: 10000, stations: 100, slow: 10, rate: 200, length: 20 * time.Second, reps: 3}, f)
		}, ""},
		{"quick defaults", []string{"--quick"}, func(t *testing.T, f fanoutOptions) {
			assert.Equal(t, fanoutOptions{clients: 1000, stations: 10, slow: 1, rate: 200, length: 10 * time.Second, reps: 1}, f)
		}, ""},
		{"stations follow the clients", []string{"--fanout-clients", "50"}, func(t *testing.T, f fanoutOptions) {
			assert.Equal(t, 1, f.stations)
			assert.Equal(t, 1, f.slow)
		}, ""},
		{"more stations than clients", []string{"--fanout-clients", "5", "--fanout-stations", "6"}, nil, "--fanout-stations"},
		{"no rate", []string{"--fanout-rate", "0.5"}, nil, "--fanout-rate"},
		{"short run", []string{"--fanout-time", "1s"}, nil, "--fanout-time"},
		{"selected alone", []string{"--only", "fanout"}, func(t *testing.T, f fanoutOptions) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseOptions(tt.args, &stderr)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, errUsage)
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, o.fanout)
			assert.True(t, o.runs(onlyFanout), "fanout runs by default and when named")
		})
	}
}

func TestPeerRefusesBadUsage(t *testing.T) {
	var stderr bytes.Buffer
	err := runPeer(t.Context(), []string{"--listen", "127.0.0.1:0"}, &stderr)
	assert.ErrorIs(t, err, errUsage)
	assert.ErrorContains(t, err, "--database-url")
}
