package cli_test

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/pgtest"
)

func TestTokensSamplesAndExport(t *testing.T) {
	url := pgtest.New(t)
	cfg := writeConfig(t, url)
	require.NoError(t, run(t, "migrate", "--config", cfg).err)
	r := run(t, "station", "add", "MH-PUNE-001", "--name", "Mula-Mutha at Sangam", "--config", cfg)
	require.NoError(t, r.err, r.stderr)

	r = run(t, "token", "add", "lab-pune", "--role", "lab", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	assert.Regexp(t, tokenLine, r.stdout, "token add prints the token alone")
	lab := strings.TrimSpace(r.stdout)
	r = run(t, "token", "add", "screen", "--role", "admin", "--config", cfg)
	assert.Error(t, r.err)
	assert.Contains(t, r.stderr, "lab, viewer or operator")
	r = run(t, "token", "add", "screen", "--config", cfg)
	assert.Error(t, r.err, "--role is required")

	st := openStore(t, url)
	p, err := st.AuthenticateToken(t.Context(), lab)
	require.NoError(t, err)
	assert.Equal(t, store.Principal{Name: "lab-pune", Role: store.RoleLab}, p)

	r = run(t, "token", "list", "--config", cfg)
	require.NoError(t, r.err)
	assert.Regexp(t, regexp.MustCompile(`(?m)^lab-pune\s+lab\s+\d+s ago$`), r.stdout)
	assert.NotContains(t, r.stdout, lab, "a listing never shows a token")

	sheet, err := filepath.Abs("../samples/testdata/mpcb-pune-2025-11.csv")
	require.NoError(t, err)
	r = run(t, "samples", "import", sheet, "--by", "lab-pune", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	assert.JSONEq(t, `{"accepted": 5, "duplicates": 0, "revised": 0}`, r.stdout)
	r = run(t, "samples", "import", sheet, "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	assert.JSONEq(t, `{"accepted": 0, "duplicates": 5, "revised": 0}`, r.stdout)

	// A fresh sample: the import updates the station's fused WQI at once.
	fresh := filepath.Join(t.TempDir(), "fresh.csv")
	require.NoError(t, os.WriteFile(fresh, []byte("station_id,param,value,unit,sampled_at\nMH-PUNE-001,fc,900,MPN/100mL,"+
		time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)+"\n"), 0o600))
	r = run(t, "samples", "import", fresh, "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	w, err := st.LatestFusedWQI(t.Context(), "MH-PUNE-001")
	require.NoError(t, err)
	require.NotNil(t, w, "the import stored the fused WQI")
	assert.Equal(t, "manual", w.Inputs["fc"].Source)
	assert.True(t, w.Result.Partial, "FC alone")

	bad := filepath.Join(t.TempDir(), "bad.csv")
	require.NoError(t, os.WriteFile(bad, []byte("station_id,param,value,unit,sampled_at\nMH-PUNE-001,bod,4,mg/L,2025-11-02T09:30+05:30\nMH-GONE-1,bod,4,mg/L,2025-11-02T09:30+05:30\n"), 0o600))
	r = run(t, "samples", "import", bad, "--config", cfg)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "row 2, station_id: no station MH-GONE-1")

	r = run(t, "export", "--station", "MH-PUNE-001", "--from", "2025-11-01T00:00:00Z", "--to", "2025-11-02T00:00:00Z", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 6)
	assert.Equal(t, "time,station_id,param,value,unit,quality,source,sensor", strings.Join(rows[0][:8], ","))
	assert.Equal(t, []string{"2025-11-01T04:00:00Z", "MH-PUNE-001", "bod", "4.2", "mg/L", "good", "manual", "MPCB Pune"}, rows[1][:8])
	r = run(t, "export", "--station", "MH-NONE-1", "--config", cfg)
	assert.ErrorIs(t, r.err, store.ErrNotFound)

	r = run(t, "token", "revoke", "lab-pune", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	_, err = st.AuthenticateToken(t.Context(), lab)
	assert.ErrorIs(t, err, store.ErrNotFound)
	r = run(t, "token", "list", "--json", "--config", cfg)
	require.NoError(t, r.err)
	var list struct {
		Tokens []store.Token `json:"tokens"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	assert.Empty(t, list.Tokens)
}

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), url, store.Options{})
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}
