package dashboard

import "testing"

// The Fleet page's rules (fleet.js) in a real browser: versions, verdicts, merging live
// records and sorting.
func TestFleetLogicInBrowser(t *testing.T) { runBrowserTests(t, "fleet_test.html") }
