package satellite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// CacheKey names one cached statistics response: a station's area, a collection and a
// week. Digest is a hash of the whole request (area, cloud limit, evalscript), so that a
// changed configuration misses the cache instead of reading stale answers.
type CacheKey struct {
	Station    string
	Collection string
	From, To   time.Time
	Digest     string
}

// Cache keeps statistics responses of finished weeks, so that a restart refetches nothing.
// Get reports ok false for a key it does not hold.
type Cache interface {
	Get(ctx context.Context, k CacheKey) (body []byte, ok bool, err error)
	Put(ctx context.Context, k CacheKey, body []byte) error
}

// FileCache is a Cache in a directory: one file per key, under
// <dir>/<station>/<collection>/. A file is written whole or not at all (a temporary file,
// synced, renamed). Safe for concurrent use by one process.
type FileCache struct {
	dir     string
	maxSize int64
}

// NewFileCache returns a cache in dir, creating it. Files larger than maxSize bytes are
// neither written nor read (0 means 16 MiB).
func NewFileCache(dir string, maxSize int64) (*FileCache, error) {
	if maxSize <= 0 {
		maxSize = 16 << 20
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("satellite cache: %w", err)
	}
	return &FileCache{dir: dir, maxSize: maxSize}, nil
}

func (c *FileCache) path(k CacheKey) (string, error) {
	switch {
	case !telemetry.ValidStationID(k.Station):
		return "", fmt.Errorf("satellite cache: station %q is not a station id", k.Station)
	case k.Collection == "" || strings.ContainsAny(k.Collection, `/\.`):
		return "", fmt.Errorf("satellite cache: collection %q", k.Collection)
	case strings.ContainsFunc(k.Digest, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }):
		return "", fmt.Errorf("satellite cache: digest %q is not hex", k.Digest)
	}
	name := k.From.UTC().Format("20060102") + "-" + k.To.UTC().Format("20060102") + "-" + k.Digest + ".json"
	return filepath.Join(c.dir, k.Station, k.Collection, name), nil
}

// Get implements Cache.
func (c *FileCache) Get(_ context.Context, k CacheKey) ([]byte, bool, error) {
	p, err := c.path(k)
	if err != nil {
		return nil, false, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("satellite cache: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("satellite cache: %w", err)
	}
	if st.Size() > c.maxSize {
		return nil, false, fmt.Errorf("satellite cache: %s is %d bytes, more than %d", p, st.Size(), c.maxSize)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, false, fmt.Errorf("satellite cache: %w", err)
	}
	return b, true, nil
}

// Put implements Cache.
func (c *FileCache) Put(_ context.Context, k CacheKey, body []byte) error {
	p, err := c.path(k)
	if err != nil {
		return err
	}
	if int64(len(body)) > c.maxSize {
		return fmt.Errorf("satellite cache: %d bytes, more than %d", len(body), c.maxSize)
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("satellite cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return fmt.Errorf("satellite cache: %w", err)
	}
	_, werr := tmp.Write(body)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), p)
	}
	if werr != nil {
		return errors.Join(fmt.Errorf("satellite cache: %w", werr), os.Remove(tmp.Name()))
	}
	return nil
}

var _ Cache = (*FileCache)(nil)
