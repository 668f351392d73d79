package fanout

import "time"

// Defaults of Options; a zero (or, for counts, negative) field means its default, except
// where Options says otherwise.
const (
	DefaultMaxClients        = 10000
	DefaultQueue             = 4096
	DefaultWriteTimeout      = 10 * time.Second
	DefaultCloseTimeout      = time.Second
	DefaultPingInterval      = 30 * time.Second
	DefaultReadLimit         = 16 << 10
	DefaultMaxStations       = 256
	DefaultMessageRate       = 5
	DefaultMessageBurst      = 20
	DefaultReplayMax         = 10000
	DefaultReplayWindow      = 24 * time.Hour
	DefaultRecent            = 10000
	DefaultPollInterval      = 5 * time.Second
	DefaultReplayConcurrency = 2
	DefaultReadyTimeout      = 10 * time.Second
)
