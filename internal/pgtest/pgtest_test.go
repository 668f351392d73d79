package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func query(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var s string
	require.NoError(t, conn.QueryRow(t.Context(), sql).Scan(&s))
	return s
}

func TestNewGivesFreshDatabases(t *testing.T) {
	a, b := pgtest.New(t), pgtest.New(t)
	require.NotEqual(t, a, b)
	conn, err := pgx.Connect(t.Context(), a)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), "CREATE TABLE only_in_a (x int)")
	require.NoError(t, err)
	assert.Equal(t, "0", query(t, b, "SELECT count(*)::text FROM pg_tables WHERE tablename = 'only_in_a'"),
		"a table made in one test database must not appear in another")
	assert.Equal(t, "UTC", query(t, a, "SHOW timezone"))
}

func TestPrivateServerStopsAndStarts(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.CreateDB(t)
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
	require.NoError(t, err)
	conn.Close(context.Background())

	require.NoError(t, srv.Stop("immediate"))
	_, err = pgx.Connect(t.Context(), url)
	require.Error(t, err, "a stopped server must refuse connections")

	require.NoError(t, srv.Start())
	assert.Equal(t, "42", query(t, url, "SELECT x::text FROM kept"), "committed rows survive an immediate stop")
}

func TestTool(t *testing.T) {
	p, err := pgtest.Tool("pg_dump")
	if err != nil {
		t.Skipf("no PostgreSQL installation: %v", err)
	}
	assert.FileExists(t, p)
}
