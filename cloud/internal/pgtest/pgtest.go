// Package pgtest gives the cloud's tests a real PostgreSQL server. It forwards to the
// module's internal/pgtest, which holds the harness so that the system tests at the top of
// the module (e2e/) can use the same one: see that package for the behaviour.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"testing"

	"github.com/purehealth/purehealth/internal/pgtest"
)

// EnvURL names an existing server to use instead of a throwaway one.
const EnvURL = pgtest.EnvURL

// ErrNoBinaries reports that no PostgreSQL installation was found.
var ErrNoBinaries = pgtest.ErrNoBinaries

// Server is a throwaway PostgreSQL server. Its methods are safe for concurrent use.
type Server = pgtest.Server

// Main runs the tests and then stops the shared server, if one was started.
func Main(m *testing.M) int { return pgtest.Main(m) }

// New returns the URL of a fresh, empty database, dropped when the test ends.
func New(t testing.TB) string {
	t.Helper()
	return pgtest.New(t)
}

// Start starts a private server for this test, stopped and removed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return pgtest.Start(t)
}

// Tool returns the path of a PostgreSQL program of the installation pgtest uses.
func Tool(name string) (string, error) { return pgtest.Tool(name) }
