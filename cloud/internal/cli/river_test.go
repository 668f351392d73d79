package cli_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/exitcode"
)

func TestStationRivers(t *testing.T) {
	url := storetest.Migrated(t)
	cfg := writeConfig(t, url)
	r := run(t, "station", "add", "MH-PUNE-001", "--name", "Sangam", "--river", "Mula-Mutha", "--river-km", "0.5", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	assert.Regexp(t, tokenLine, r.stdout, "the token alone, as ever")
	r = run(t, "station", "add", "MH-PUNE-002", "--name", "Mundhwa", "--config", cfg)
	require.NoError(t, r.err, r.stderr)

	r = run(t, "station", "set-river", "MH-PUNE-002", "--river", "Mula-Mutha", "--river-km", "9.5", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	assert.Equal(t, "station MH-PUNE-002 is on the Mula-Mutha at km 9.5\n", r.stderr)

	st := storetest.OpenURL(t, url, store.Options{})
	list, err := st.Stations(t.Context(), "", 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	for i, km := range []float64{0.5, 9.5} {
		require.NotNil(t, list[i].River)
		assert.Equal(t, "Mula-Mutha", *list[i].River)
		assert.Equal(t, km, *list[i].RiverKm)
	}

	r = run(t, "station", "list", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	assert.Regexp(t, `\nMH-PUNE-001\s+Sangam\s.*\s+Mula-Mutha km 0\.5\n`, r.stdout)
	assert.Regexp(t, `\nMH-PUNE-002\s+Mundhwa\s.*\s+Mula-Mutha km 9\.5\n`, r.stdout)

	r = run(t, "station", "set-river", "MH-PUNE-002", "--none", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	got, err := st.Station(t.Context(), "MH-PUNE-002")
	require.NoError(t, err)
	assert.Nil(t, got.River)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"station", "add", "X-1", "--name", "x", "--river", "R"}, "give both --river and --river-km, or neither"},
		{[]string{"station", "set-river", "MH-PUNE-002"}, "give --river and --river-km, or --none"},
		{[]string{"station", "set-river", "MH-PUNE-002", "--none", "--river", "R", "--river-km", "1"}, "give --river and --river-km, or --none"},
	} {
		r := run(t, append(tc.args, "--config", cfg)...)
		require.Error(t, r.err)
		assert.Equal(t, exitcode.Startup, r.code)
		assert.Contains(t, r.stderr, tc.want)
	}
	r = run(t, "station", "set-river", "MH-NONE-000", "--river", "R", "--river-km", "1", "--config", cfg)
	assert.ErrorIs(t, r.err, store.ErrNotFound)
	r = run(t, "station", "set-river", "MH-PUNE-001", "--river", " R", "--river-km", "1", "--config", cfg)
	assert.ErrorIs(t, r.err, store.ErrInvalid)
	assert.Contains(t, r.stderr, "river name")
}
