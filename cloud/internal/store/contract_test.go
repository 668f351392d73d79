package store_test

import (
	"testing"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
)

// layout is the storage layout a contract case runs on.
type layout struct{ storetest.Layout }

func (l layout) open(t testing.TB, opts store.Options) (*store.Store, string) {
	t.Helper()
	return l.Open(t, opts)
}

// contract is what the store promises on either layout: the same rows, the same query
// results, the same events. Each case gets fresh databases of its layout.
var contract = []struct {
	name string
	run  func(t *testing.T, l layout)
}{
	{"IngestExactlyOnce", testIngestExactlyOnce},
	{"IngestStoresEveryFieldVerbatim", testIngestStoresEveryFieldVerbatim},
	{"IngestRejectsWhatTheDatabaseCannotHold", testIngestRejectsWhatTheDatabaseCannotHold},
	{"IngestAfterTheAgentLostItsBuffer", testIngestAfterTheAgentLostItsBuffer},
	{"IngestRangesFollowTheLanes", testIngestRangesFollowTheLanes},
	{"ReadingEventsAreOneRowPerBatch", testReadingEventsAreOneRowPerBatch},
	{"AlertsFollowTheNewestTransition", testAlertsFollowTheNewestTransition},
	{"LatestValuesKeepTheNewestUsable", testLatestValuesKeepTheNewestUsable},
	{"RollupsMatchAnIndependentComputation", testRollupsMatchAnIndependentComputation},
	{"ConcurrentOverlappingBatchesCountOnce", testConcurrentOverlappingBatchesCountOnce},
	{"IngestWritesEventsOfWhatIsNew", testIngestWritesEventsOfWhatIsNew},
	{"BackfillIsAnnouncedNotStreamed", testBackfillIsAnnouncedNotStreamed},
	{"EventIDsFollowCommitOrder", testEventIDsFollowCommitOrder},
	{"ListenerAnnouncesNewEvents", testListenerAnnouncesNewEvents},
	{"EventGapBoundsAndPrune", testEventGapBoundsAndPrune},
	{"StationHealthOfflineThenOnline", testStationHealthOfflineThenOnline},
	{"EventDataIsWhatGoEncodes", testEventDataIsWhatGoEncodes},
	{"StationsAndTokens", testStationsAndTokens},
	{"UpstreamRevisionsKeepHistory", testUpstreamRevisionsKeepHistory},
	{"SatelliteProvenance", testSatelliteProvenance},
	{"SamplesAreIdempotent", testSamplesAreIdempotent},
	{"ReadingsMergeStationAndExternal", testReadingsMergeStationAndExternal},
	{"ExternalReadingsOutliveRawRetention", testExternalReadingsOutliveRawRetention},
	{"CursorsAndCacheSurviveRestart", testCursorsAndCacheSurviveRestart},
	{"TokensWithRoles", testTokensWithRoles},
	{"FusedWQIStoredWhenItChanges", testFusedWQIStoredWhenItChanges},
	{"FleetHealth", testFleetHealth},
	{"FleetHealthRefused", testFleetHealthRefused},
	{"RiversPlaceStations", testRiversPlaceStations},
	{"ForecastsStoredWhenTheyChange", testForecastsStoredWhenTheyChange},
	{"CloudAlertsReconcile", testCloudAlertsReconcile},
	{"AnalysisSeriesSplitsRollupAndReadings", testAnalysisSeriesSplitsRollupAndReadings},
	{"RunExclusiveOneAtATime", testRunExclusiveOneAtATime},
}

// TestContract runs the contract on plain PostgreSQL and, where the extension can be
// loaded, on TimescaleDB (skipped, saying why, where it cannot: CI has none).
func TestContract(t *testing.T) {
	layouts := []struct {
		mode store.Mode
		get  func(t *testing.T) storetest.Layout
	}{
		{store.ModePlain, func(*testing.T) storetest.Layout { return storetest.Plain() }},
		{store.ModeTimescale, func(t *testing.T) storetest.Layout { return storetest.Timescale(t) }},
	}
	for _, lt := range layouts {
		t.Run(string(lt.mode), func(t *testing.T) {
			l := layout{lt.get(t)}
			for _, c := range contract {
				t.Run(c.name, func(t *testing.T) { c.run(t, l) })
			}
		})
	}
}
