package lazyfs

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// model is what the file must look like: the bytes readers see and the bytes last synced.
type model struct {
	view, synced []byte
}

func (m *model) write(data []byte, off int64) {
	if end := off + int64(len(data)); end > int64(len(m.view)) {
		m.view = append(m.view, make([]byte, end-int64(len(m.view)))...)
	}
	copy(m.view[off:], data)
}

func (m *model) truncate(size int64) {
	if size < int64(len(m.view)) {
		m.view = m.view[:size]
		return
	}
	m.view = append(m.view, make([]byte, size-int64(len(m.view)))...)
}

// newTestCache opens a fresh cache over a backing file holding initial.
func newTestCache(t *testing.T, initial []byte) *cached {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, initial, 0o600))
	fd, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { fd.Close() })
	c, err := newCached(p, fd)
	require.NoError(t, err)
	return c
}

func viewOf(t *testing.T, c *cached) []byte {
	t.Helper()
	buf := make([]byte, c.size+PageSize) // more than there is: read stops at the end
	n, err := c.read(buf, 0)
	require.NoError(t, err)
	return buf[:n]
}

func diskOf(t *testing.T, c *cached) []byte {
	t.Helper()
	b, err := os.ReadFile(c.name)
	require.NoError(t, err)
	return b
}

// Random writes, truncations, reads and syncs against the model: readers always see the
// model's view, a sync puts exactly the view on the disk, and dropping the cache leaves
// the disk as last synced.
func TestCacheAgainstModel(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		initial := make([]byte, rng.IntN(3*PageSize))
		fillRandom(rng, initial)
		c := newTestCache(t, initial)
		m := &model{view: bytes.Clone(initial), synced: bytes.Clone(initial)}
		now := time.Unix(1e9, 0)
		for op := range 300 {
			switch k := rng.IntN(10); {
			case k < 5:
				data := make([]byte, 1+rng.IntN(3*PageSize))
				fillRandom(rng, data)
				off := rng.Int64N(6 * PageSize)
				require.NoError(t, c.write(data, off, now))
				m.write(data, off)
			case k < 7:
				size := rng.Int64N(6 * PageSize)
				c.truncate(size, now)
				m.truncate(size)
			case k < 8:
				off := rng.Int64N(7 * PageSize)
				buf := make([]byte, rng.IntN(2*PageSize))
				n, err := c.read(buf, off)
				require.NoError(t, err)
				want := []byte{}
				if off < int64(len(m.view)) {
					want = m.view[off:min(int64(len(m.view)), off+int64(len(buf)))]
				}
				require.Equal(t, want, buf[:n], "seed %d op %d: read %d at %d", seed, op, len(buf), off)
			case k < 9:
				_, err := c.sync()
				require.NoError(t, err)
				m.synced = bytes.Clone(m.view)
				require.False(t, c.dirty(), "seed %d op %d: dirty right after a sync", seed, op)
				require.Equal(t, m.synced, diskOf(t, c), "seed %d op %d: the disk after a sync", seed, op)
			default:
				c.drop()
				m.view = bytes.Clone(m.synced)
				require.Equal(t, m.synced, diskOf(t, c), "seed %d op %d: the disk after a power cut", seed, op)
			}
			require.Equal(t, int64(len(m.view)), c.size, "seed %d op %d: size", seed, op)
			require.Equal(t, m.view, viewOf(t, c), "seed %d op %d: what readers see", seed, op)
		}
	}
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// A truncation is data too: shrinking and growing again without a sync reads zeros, and a
// cut forgets the truncation.
func TestCacheTruncateThenGrowReadsZeros(t *testing.T) {
	initial := bytes.Repeat([]byte{0xAA}, 3*PageSize)
	c := newTestCache(t, initial)
	now := time.Now()
	c.truncate(100, now)
	c.truncate(2*PageSize, now)
	want := append(bytes.Repeat([]byte{0xAA}, 100), make([]byte, 2*PageSize-100)...)
	assert.Equal(t, want, viewOf(t, c))
	assert.Equal(t, initial, diskOf(t, c), "nothing reaches the disk before a sync")
	c.drop()
	assert.Equal(t, initial, viewOf(t, c), "after a cut the file is as last synced")
}

// cutFS is an unmounted FS holding one cached file, for the power-cut rules alone.
func cutFS(t *testing.T, c *cached) *FS {
	t.Helper()
	return &FS{files: map[uint64]*cached{1: c}, gone: map[*cached]bool{}, log: slog.New(slog.DiscardHandler)}
}

// A torn write keeps a prefix of the latest write, ending on a sector boundary inside it;
// the rest of that write and every other unsynced page are lost.
func TestCutTearsTheLatestWrite(t *testing.T) {
	kept := map[int64]bool{}
	for seed := range uint64(30) {
		old := bytes.Repeat([]byte{0x11}, 4*PageSize)
		c := newTestCache(t, old)
		f := cutFS(t, c)
		other := bytes.Repeat([]byte{0x22}, PageSize)
		require.Zero(t, f.write(t.Context(), c, other, 3*PageSize))
		latest := bytes.Repeat([]byte{0x33}, PageSize+100)
		require.Zero(t, f.write(t.Context(), c, latest, 100))

		r, err := f.Cut(Cut{Tear: true, Rand: rand.New(rand.NewPCG(seed, 1))})
		require.NoError(t, err)
		require.NotNil(t, r.Torn, "a write of more than one sector is torn")
		assert.Equal(t, int64(100), r.Torn.Off)
		assert.Equal(t, int64(len(latest)), r.Torn.Len)
		k := r.Torn.Kept
		assert.Zero(t, (100+k)%SectorSize, "the tear ends on a sector boundary")
		assert.True(t, k > 0 && k < int64(len(latest)), "the tear is inside the write: kept %d of %d", k, len(latest))
		kept[k] = true

		want := bytes.Clone(old)
		copy(want[100:], latest[:k])
		assert.Equal(t, want, diskOf(t, c), "seed %d: the disk holds the old data with a prefix of the latest write", seed)
		assert.Equal(t, want, viewOf(t, c))
		assert.Equal(t, CutReport{DirtyFiles: 1, DirtyPages: 3, Torn: r.Torn}, r,
			"pages 0 and 1 (the latest write) and 3 were dirty, none written back")
	}
	assert.Greater(t, len(kept), 3, "the tear falls at different sectors: %v", kept)
}

// Pages written back before the cut survive whole; the others are lost. A cut happens
// once: afterwards every change fails.
func TestCutWriteback(t *testing.T) {
	tests := []struct {
		name      string
		writeback float64
		want      func(old, view []byte) []byte
	}{
		{"nothing written back", 0, func(old, _ []byte) []byte { return old }},
		{"everything written back", 1, func(_, view []byte) []byte { return view }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := bytes.Repeat([]byte{0x11}, 2*PageSize)
			c := newTestCache(t, old)
			f := cutFS(t, c)
			require.Zero(t, f.write(t.Context(), c, bytes.Repeat([]byte{0x44}, 3*PageSize), PageSize/2))
			view := viewOf(t, c)
			r, err := f.Cut(Cut{Writeback: tt.writeback})
			require.NoError(t, err)
			assert.Nil(t, r.Torn, "no tear was asked for")
			assert.Equal(t, tt.want(old, view), diskOf(t, c))
			assert.Equal(t, int(tt.writeback*4), r.WrittenBack)

			again, err := f.Cut(Cut{Writeback: 1})
			require.NoError(t, err)
			assert.Equal(t, CutReport{}, again, "a second cut finds nothing")
			assert.Equal(t, syscall.EIO, f.write(t.Context(), c, []byte{1}, 0), "writes fail once the power is cut")
			assert.Equal(t, syscall.EIO, f.fsync(t.Context(), c), "syncs fail once the power is cut")
			assert.Equal(t, tt.want(old, view), diskOf(t, c))
		})
	}
}

// A write within one sector is all or nothing: it is never torn.
func TestCutNeverTearsASector(t *testing.T) {
	old := make([]byte, PageSize)
	c := newTestCache(t, old)
	f := cutFS(t, c)
	require.Zero(t, f.write(t.Context(), c, bytes.Repeat([]byte{9}, SectorSize), SectorSize))
	r, err := f.Cut(Cut{Tear: true})
	require.NoError(t, err)
	assert.Nil(t, r.Torn)
	assert.Equal(t, old, diskOf(t, c))
}
