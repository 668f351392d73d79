package spool

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// filledFile makes a spool file holding 20 000 readings and returns its path.
func filledFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.db")
	s, err := Open(Options{Path: path, MaxBytes: 16 << 20})
	require.NoError(t, err)
	appendAll(t, s, series("ph-1", 20000, t0, time.Second), 4000)
	require.NoError(t, s.Close())
	return path
}

func TestCorruptFileQuarantined(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	page := os.Getpagesize()
	tests := []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"garbage over both meta pages", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteAt(garbage(2*page), 0)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
		{"garbage over the data pages", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			require.NoError(t, err)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteAt(garbage(int(fi.Size())-2*page), int64(2*page))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
		{"truncated to 100 bytes", func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, 100))
		}},
		{"truncated below its high-water mark", func(t *testing.T, path string) {
			// Pages past the end of the file would fault under the memory map.
			require.NoError(t, os.Truncate(path, int64(8*page)))
		}},
		{"random bytes", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, garbage(64<<10), 0o600))
		}},
		{"not a database", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte("station: {id: MH-PUNE-001}\n"), 0o600))
		}},
		{"empty file", func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, 0))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filledFile(t)
			tt.corrupt(t, path)
			damaged, err := os.ReadFile(path)
			require.NoError(t, err)

			s := openSpool(t, Options{Path: path, Now: func() time.Time { return t0 }})
			q := s.Quarantined()
			require.NotEmpty(t, q, "the corrupt file is quarantined")
			assert.Equal(t, path+".corrupt-20250301T000000Z", q)
			kept, err := os.ReadFile(q)
			require.NoError(t, err, "the old file stays for forensics")
			assert.True(t, bytes.Equal(damaged, kept), "the quarantined file is untouched")

			assert.Equal(t, 0, s.Stats().Records[Readings], "a fresh, empty buffer")
			got, err := s.AppendReadings(t.Context(), series("ph-1", 2, t0, time.Second))
			require.NoError(t, err, "and it works")
			assert.Equal(t, []uint64{1, 2}, seqs(got))
		})
	}
}

func TestOneBadMetaPageIsNotCorruption(t *testing.T) {
	// bbolt keeps two meta pages so that a torn write of one leaves the other.
	path := filledFile(t)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte{0xAB}, 64), 16) // meta 0, after the page header
	require.NoError(t, err)
	require.NoError(t, f.Close())

	s := openSpool(t, Options{Path: path})
	assert.Empty(t, s.Quarantined())
	assert.GreaterOrEqual(t, s.Stats().Records[Readings], 16000, "the data of the other meta page is there")
}

func TestQuarantineNamesDoNotCollide(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.db")
	now := func() time.Time { return t0 }
	for i, want := range []string{".corrupt-20250301T000000Z", ".corrupt-20250301T000000Z-2"} {
		require.NoError(t, os.WriteFile(path, []byte("junk"), 0o600), "round %d", i)
		s, err := Open(Options{Path: path, Now: now})
		require.NoError(t, err)
		assert.Equal(t, path+want, s.Quarantined())
		require.NoError(t, s.Close())
		require.NoError(t, os.Remove(path))
	}
}

func TestUndecodableValueSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s := openSpool(t, Options{Path: path})
	got := appendAll(t, s, series("ph-1", 3, t0, time.Second), 3)
	require.NoError(t, s.Close())

	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(Readings.bucket()).Put(seqKey(2), []byte{9, 9, 9})
	}))
	require.NoError(t, db.Close())

	s = openSpool(t, Options{Path: path})
	assert.Empty(t, s.Quarantined(), "a bad value is not a bad file")
	rs, err := s.ReadingsAfter(0, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 3}, seqs(rs), "the value that does not decode is skipped")
	newest, err := s.Readings(Query{Param: "ph"})
	require.NoError(t, err)
	assert.Equal(t, []uint64{3, 1}, seqs(newest))
	assert.Equal(t, uint64(2), s.Stats().CorruptSkipped)
	assert.Equal(t, got[2], rs[1])
}

func TestCreateLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.db")
	// A creation interrupted by a crash leaves its temporary file behind.
	require.NoError(t, os.WriteFile(path+".new-99999", []byte("half"), 0o600))
	openSpool(t, Options{Path: path})
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"agent.db"}, names, "only the database: %s", strings.Join(names, ", "))
}
