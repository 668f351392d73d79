package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/pgtest"
)

func tables(t *testing.T, url string) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
		ORDER BY 1`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func TestMigrateFreshThenIdempotent(t *testing.T) {
	url := pgtest.New(t)

	res, err := store.Migrate(t.Context(), url, store.MigrateOptions{Mode: store.ModeAuto})
	require.NoError(t, err)
	assert.Equal(t, store.ModePlain, res.Mode, "the test server has no timescaledb: auto must choose plain")
	assert.Equal(t, "plain PostgreSQL (native partitions)", res.Mode.String())
	assert.Equal(t, 0, res.From)
	assert.Equal(t, store.SchemaVersion(), res.To)
	assert.Len(t, res.Applied, store.SchemaVersion())
	for _, want := range []string{"stations", "measurements", "wqi_readings", "alerts", "alert_events",
		"measurements_hourly", "measurements_daily", "schema_migrations", "schema_meta"} {
		assert.Contains(t, tables(t, url), want)
	}

	again, err := store.Migrate(t.Context(), url, store.MigrateOptions{})
	require.NoError(t, err, "a second migrate must succeed")
	assert.Empty(t, again.Applied, "a second migrate must apply nothing")
	assert.Equal(t, store.SchemaVersion(), again.From)
	assert.Equal(t, store.ModePlain, again.Mode)

	sc, err := store.CheckSchema(t.Context(), url)
	require.NoError(t, err)
	assert.Equal(t, store.Schema{Version: store.SchemaVersion(), Want: store.SchemaVersion(), Mode: store.ModePlain}, sc)
}

func TestMigrateConcurrentRunsDoNotRace(t *testing.T) {
	url := pgtest.New(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	applied := make([]int, 3)
	for i := range errs {
		wg.Go(func() {
			res, err := store.Migrate(t.Context(), url, store.MigrateOptions{})
			errs[i], applied[i] = err, len(res.Applied)
		})
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		require.NoError(t, err, "migrator %d", i)
		total += applied[i]
	}
	assert.Equal(t, store.SchemaVersion(), total, "each migration must be applied exactly once across migrators")
}

func TestMigrateRefusesToSwitchMode(t *testing.T) {
	url := pgtest.New(t)
	_, err := store.Migrate(t.Context(), url, store.MigrateOptions{Mode: store.ModePlain})
	require.NoError(t, err)
	_, err = store.Migrate(t.Context(), url, store.MigrateOptions{Mode: store.ModeTimescale})
	require.ErrorIs(t, err, store.ErrInvalid)
	assert.ErrorContains(t, err, "cannot change it")
}

func TestMigrateTimescaleWithoutExtensionFailsClearly(t *testing.T) {
	url := pgtest.New(t)
	_, err := store.Migrate(t.Context(), url, store.MigrateOptions{Mode: store.ModeTimescale})
	require.Error(t, err)
	assert.ErrorContains(t, err, "timescaledb")
	sc, err := store.CheckSchema(t.Context(), url)
	require.NoError(t, err)
	assert.Equal(t, store.Mode(""), sc.Mode, "a failed choice must not be recorded")
}

// TestMigrateAutoWhereTimescaleIsInstalledButNotPreloaded: enabling the extension there
// would end the session, so auto must see the missing preload and choose plain, saying why,
// and an explicit timescaledb must fail with the same reason on a still usable database.
func TestMigrateAutoWhereTimescaleIsInstalledButNotPreloaded(t *testing.T) {
	if _, err := pgtest.TimescaleSettings(); err != nil {
		t.Skipf("%v: the fallback cannot be shown", err)
	}
	url := pgtest.New(t) // pgtest's shared server does not preload it
	_, err := store.Migrate(t.Context(), url, store.MigrateOptions{Mode: store.ModeTimescale})
	require.ErrorIs(t, err, store.ErrInvalid)
	assert.ErrorContains(t, err, "not in the server's shared_preload_libraries")

	res, err := store.Migrate(t.Context(), url, store.MigrateOptions{})
	require.NoError(t, err)
	assert.Equal(t, store.ModePlain, res.Mode)
	assert.Contains(t, res.ModeReason, "shared_preload_libraries")
	assert.Equal(t, store.SchemaVersion(), res.To)
}

func TestOpenRefusesUnmigratedOrOutdated(t *testing.T) {
	url := pgtest.New(t)
	_, err := store.Open(t.Context(), url, store.Options{})
	require.ErrorIs(t, err, store.ErrSchema)
	assert.EqualError(t, err, "database schema mismatch: database is at schema 0, this ph-cloud needs "+
		itoa(store.SchemaVersion())+": run ph-cloud migrate")

	_, err = store.Migrate(t.Context(), url, store.MigrateOptions{})
	require.NoError(t, err)
	execSQL(t, url, `DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)`)
	_, err = store.Open(t.Context(), url, store.Options{})
	require.ErrorIs(t, err, store.ErrSchema)
	assert.ErrorContains(t, err, "run ph-cloud migrate")

	execSQL(t, url, `INSERT INTO schema_migrations (version, name) VALUES (998, 'a'), (999, 'future')`)
	_, err = store.Open(t.Context(), url, store.Options{})
	require.ErrorIs(t, err, store.ErrSchema)
	assert.ErrorContains(t, err, "upgrade ph-cloud")
}
