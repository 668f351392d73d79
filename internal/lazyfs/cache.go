package lazyfs

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"
)

// PageSize is the unit of the simulated page cache: a write dirties every page it touches,
// and a page is written back whole.
const PageSize = 4096

// SectorSize is the unit a device writes atomically: a torn write persists a whole number
// of sectors.
const SectorSize = 512

// cached is the page cache of one backing file: everything written to it since its last
// sync, over the backing file, which is the "disk". Its methods are not safe for
// concurrent use; FS serialises them.
//
// Invariants: every page in pages is PageSize long and zero past size; backing bytes at
// or past low read as zeros (a truncation not yet synced); low <= disk; low <= size
// whenever size < disk.
type cached struct {
	name  string   // the backing path it was opened by, for messages
	fd    *os.File // the backing file
	disk  int64    // the backing file's size
	size  int64    // the file's size as readers see it
	low   int64    // backing bytes from here on are gone
	pages map[int64][]byte
	mtime time.Time // of the last change not yet synced; zero when none

	opens  int  // open handles
	orphan bool // unlinked: forgotten once the last handle closes
}

// newCached starts the page cache of the backing file fd, with nothing dirty.
func newCached(name string, fd *os.File) (*cached, error) {
	fi, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	return &cached{name: name, fd: fd, disk: fi.Size(), size: fi.Size(), low: fi.Size(), pages: map[int64][]byte{}}, nil
}

// dirty reports whether anything differs from the backing file.
func (c *cached) dirty() bool {
	return len(c.pages) > 0 || c.size != c.disk || c.low != c.disk
}

// read copies the file's bytes at off into p, as a reader sees them, and returns how many
// there are before the end of the file.
func (c *cached) read(p []byte, off int64) (int, error) {
	if off >= c.size {
		return 0, nil
	}
	p = p[:min(int64(len(p)), c.size-off)]
	clear(p)
	if valid := min(c.low, c.disk); off < valid {
		part := p[:min(int64(len(p)), valid-off)]
		if _, err := c.fd.ReadAt(part, off); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read %s: %w", c.name, err)
		}
	}
	end := off + int64(len(p))
	for idx := off / PageSize; idx*PageSize < end; idx++ {
		pg, ok := c.pages[idx]
		if !ok {
			continue
		}
		start := idx * PageSize
		from, to := max(off, start), min(end, start+PageSize)
		copy(p[from-off:to-off], pg[from-start:to-start])
	}
	return len(p), nil
}

// write puts data at off, dirtying every page it touches, and grows the file if it ends
// past it.
func (c *cached) write(data []byte, off int64, now time.Time) error {
	end := off + int64(len(data))
	for idx := off / PageSize; idx*PageSize < end; idx++ {
		start := idx * PageSize
		pg, ok := c.pages[idx]
		if !ok {
			// A page cache reads a page in before a partial write to it.
			pg = make([]byte, PageSize)
			if _, err := c.read(pg, start); err != nil {
				return err
			}
			c.pages[idx] = pg
		}
		from, to := max(off, start), min(end, start+PageSize)
		copy(pg[from-start:to-start], data[from-off:to-off])
	}
	c.size = max(c.size, end)
	c.mtime = now
	return nil
}

// truncate sets the size. Shrinking forgets what lay past the new end, growing adds zeros.
func (c *cached) truncate(size int64, now time.Time) {
	if size < c.size {
		for idx := range c.pages {
			if idx*PageSize >= size {
				delete(c.pages, idx)
			}
		}
		if pg, ok := c.pages[size/PageSize]; ok {
			clear(pg[size%PageSize:])
		}
		c.low = min(c.low, size)
	}
	c.size = size
	c.mtime = now
}

// sync writes everything to the backing file, which then holds exactly what readers see.
// It returns how many bytes it wrote.
func (c *cached) sync() (int64, error) {
	if c.low < c.disk {
		if err := c.fd.Truncate(c.low); err != nil {
			return 0, fmt.Errorf("truncate %s: %w", c.name, err)
		}
		c.disk = c.low
	}
	if c.size != c.disk {
		if err := c.fd.Truncate(c.size); err != nil {
			return 0, fmt.Errorf("truncate %s: %w", c.name, err)
		}
		c.disk = c.size
	}
	var n int64
	for _, idx := range slices.Sorted(maps.Keys(c.pages)) {
		w, err := c.persist(idx*PageSize, (idx+1)*PageSize)
		n += w
		if err != nil {
			return n, err
		}
	}
	clear(c.pages)
	c.low = c.disk
	c.mtime = time.Time{}
	return n, nil
}

// persist writes the dirty bytes in [off, end) (no further than the file's end) to the
// backing file, growing it if they lie past its end, as the kernel's write-back does. They
// stay dirty. It returns how many bytes it wrote.
func (c *cached) persist(off, end int64) (int64, error) {
	end = min(end, c.size)
	var n int64
	for idx := off / PageSize; idx*PageSize < end; idx++ {
		pg, ok := c.pages[idx]
		if !ok {
			continue
		}
		start := idx * PageSize
		from, to := max(off, start), min(end, start+PageSize)
		w, err := c.fd.WriteAt(pg[from-start:to-start], from)
		n += int64(w)
		if err != nil {
			return n, fmt.Errorf("write %s: %w", c.name, err)
		}
		c.disk = max(c.disk, to)
	}
	return n, nil
}

// drop forgets everything not synced: the power is gone.
func (c *cached) drop() {
	clear(c.pages)
	c.size, c.low, c.mtime = c.disk, c.disk, time.Time{}
}
