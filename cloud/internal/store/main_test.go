package store_test

import (
	"os"
	"testing"

	"github.com/purehealth/purehealth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
