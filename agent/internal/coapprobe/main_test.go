package coapprobe

import (
	"os"
	"testing"

	"github.com/purehealth/purehealth/agent/internal/probetest"
)

// The server side of these tests is ph-sim's real process: probetest builds it once.
func TestMain(m *testing.M) { os.Exit(probetest.Main(m)) }
