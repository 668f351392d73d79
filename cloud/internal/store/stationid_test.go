package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// TestStationIDRuleInSQL: the stations table's CHECK constraint and
// telemetry.ValidStationID, the rule every Go check uses, accept exactly the same ids.
// The CHECK stays in SQL, so that a row written by any client obeys it; this table keeps
// the two from drifting apart.
func TestStationIDRuleInSQL(t *testing.T) {
	conn := connect(t, storetest.Migrated(t))
	ids := []string{
		"a", "1", "-", "_", "MH-PUNE-001", "st_2", "A-_9z", strings.Repeat("a", 64),
		"", strings.Repeat("a", 65), "st/1", "st+1", "st#", "st 1", "st.1", "st:1", "é", "Ａ1",
		"st\n", "\nst", "st\t", "a\u200bb", "st'1", `st"1`, "st\\1", "st*", "st?", "[a]", "a-z",
	}
	for i, id := range ids {
		t.Run(id, func(t *testing.T) {
			ctx := t.Context()
			tx, err := conn.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(context.Background()) }() // nothing is kept
			token := sha256.Sum256([]byte{byte(i)})
			_, err = tx.Exec(ctx, `INSERT INTO stations (id, name, token_sha256) VALUES ($1, 'x', $2)`, id, token[:])
			if err != nil {
				pgErr, ok := errors.AsType[*pgconn.PgError](err)
				require.True(t, ok, "%v", err)
				require.Equal(t, "23514", pgErr.Code, "only the CHECK may refuse the row: %v", err)
			}
			assert.Equal(t, telemetry.ValidStationID(id), err == nil,
				"Go says %v, SQL says %v (%v)", telemetry.ValidStationID(id), err == nil, err)
		})
	}
}
