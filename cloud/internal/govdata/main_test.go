package govdata

import (
	"os"
	"testing"

	"github.com/purehealth/purehealth/cloud/internal/upstream/upstreamtest"
)

func TestMain(m *testing.M) { os.Exit(upstreamtest.Main(m)) }
