package lazyfs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ErrUnavailable reports that this machine cannot mount a FUSE filesystem: no /dev/fuse,
// no permission to mount, or no FUSE support in the kernel.
var ErrUnavailable = errors.New("FUSE mounting is not available")

// Options configure a mount. The zero value is a fast device.
type Options struct {
	// FsyncDelay is how long the device takes for each fsync, fdatasync and directory
	// fsync before the data is on the disk, one flush at a time: a slow disk such as an
	// SD card.
	FsyncDelay time.Duration
	// Logger receives the few things worth saying (a backing file that fails, FUSE's own
	// warnings). nil discards them.
	Logger *slog.Logger
}

// FS is a mounted lazy filesystem. Its methods are safe for concurrent use.
type FS struct {
	mountpoint string
	delay      time.Duration
	log        *slog.Logger
	server     *fuse.Server
	unmounted  bool // guarded by umu
	umu        sync.Mutex

	mu    sync.Mutex
	files map[uint64]*cached // by backing inode number
	gone  map[*cached]bool   // unlinked files still open: forgotten at their last close
	off   bool               // the power is cut: every change fails with EIO
	stall chan struct{}      // after a cut with Stall: closed by Unmount
	last  lastWrite          // the latest write not yet synced
	stats Stats

	device sync.Mutex // held for FsyncDelay: the device flushes one at a time
}

// lastWrite is the latest write: the one a power cut tears.
type lastWrite struct {
	c        *cached
	off, end int64
}

// Stats count what the filesystem did since it was mounted.
type Stats struct {
	Reads        int64 // read requests: what the kernel's page cache did not have
	ReadBytes    int64
	Writes       int64 // write requests
	WrittenBytes int64
	Syncs        int64 // fsync and fdatasync requests on files, each one flush of the device
	SyncedBytes  int64 // bytes those flushes wrote to the backing files
	DirSyncs     int64 // fsync requests on directories
	DirtyFiles   int   // files with data not yet synced, now
	DirtyPages   int   // pages not yet synced, now
}

// Mount serves the directory backing at mountpoint (both must exist) until Unmount. Mounting needs /dev/fuse and the right to mount (root, or fusermount3);
// without them it fails with ErrUnavailable.
func Mount(backing, mountpoint string, o Options) (*FS, error) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{backing, mountpoint} {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("lazyfs: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("lazyfs: %s is not a directory", dir)
		}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FS{mountpoint: mountpoint, delay: o.FsyncDelay, log: log, files: map[uint64]*cached{}, gone: map[*cached]bool{}}
	inner, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	lb, ok := inner.(*fs.LoopbackNode)
	if !ok {
		return nil, fmt.Errorf("lazyfs: unexpected loopback root %T", inner)
	}
	timeout := time.Second
	f.server, err = fs.Mount(mountpoint, &node{LoopbackNode: lb, lfs: f}, &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName: backing, Name: "lazyfs",
			// As root, mount(2) directly; otherwise fusermount3.
			DirectMount: true,
			// Without writeback caching (go-fuse never asks for it) the kernel sends every
			// write to us before write(2) returns, and keeps its page cache, which mmap
			// readers see, in step with it. We are its only writer, so a change of mtime
			// says nothing new: keep the cache rather than drop it on every stat.
			DisabledCapabilities: fuse.CAP_AUTO_INVAL_DATA,
			Logger:               slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		EntryTimeout: &timeout, AttrTimeout: &timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: mount %s: %w", ErrUnavailable, mountpoint, err)
	}
	return f, nil
}

// Mountpoint is where the filesystem is mounted.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Stats returns the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	for _, c := range f.files {
		if c.dirty() {
			s.DirtyFiles++
		}
		s.DirtyPages += len(c.pages)
	}
	return s
}

// Cut says what a power cut leaves of the data not yet synced besides nothing.
type Cut struct {
	// Tear persists a prefix of the latest write, ending on a sector boundary inside it,
	// as a device does that loses power in the middle of that write. A write within one
	// sector is not torn.
	Tear bool
	// Writeback is the chance of each other page not yet synced of having been written
	// back by the kernel before the cut (0: none was, 1: all were).
	Writeback float64
	// Rand draws the tear and the pages written back; nil means one seeded from the clock.
	Rand *rand.Rand
	// Stall makes every operation after the cut hang, as on a disk that no longer
	// answers, until a signal interrupts its caller or the filesystem is unmounted, and
	// then fail with EIO. Cut the power, then kill the programs using the mount: none of
	// them can act on a failure the cut caused (the kill is pending before they learn of
	// it), so the cut strikes them at one instant, even in the middle of an fsync. Without
	// Stall, operations fail with EIO at once.
	Stall bool
}

// CutReport says what a power cut found and kept.
type CutReport struct {
	DirtyFiles  int   // files with data not yet synced
	DirtyPages  int   // pages not yet synced
	WrittenBack int   // of those, pages kept whole (Cut.Writeback)
	Torn        *Torn // the write torn, if any
}

// Torn is a write persisted in part.
type Torn struct {
	File     string // the backing path the file was opened by
	Off, Len int64  // the write
	Kept     int64  // bytes of it persisted, from Off
}

func (r CutReport) String() string {
	s := fmt.Sprintf("%d pages of %d files not synced, %d written back", r.DirtyPages, r.DirtyFiles, r.WrittenBack)
	if t := r.Torn; t != nil {
		s += fmt.Sprintf(", torn write of %d bytes at %d in %s: %d kept", t.Len, t.Off, filepath.Base(t.File), t.Kept)
	}
	return s
}

// Cut cuts the power: everything not synced is lost except what c keeps, and from now on
// every change and every sync fails with EIO (see Cut.Stall). What the backing directory
// holds afterwards is what a restart would find on the disk. The kernel still caches what
// was written, so unmount and mount again before reading the files. A second Cut does
// nothing.
func (f *FS) Cut(c Cut) (CutReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.off {
		return CutReport{}, nil
	}
	f.off = true
	if c.Stall {
		f.stall = make(chan struct{})
	}
	rng := c.Rand
	if rng == nil {
		seed := uint64(time.Now().UnixNano())
		rng = rand.New(rand.NewPCG(seed, seed>>1))
	}
	var (
		r    CutReport
		errs []error
		last = f.last
	)
	if !c.Tear {
		last = lastWrite{}
	}
	// Map order is random: go by name and page, so that a seed replays a cut.
	files := slices.SortedFunc(maps.Values(f.files), func(a, b *cached) int { return cmp.Compare(a.name, b.name) })
	for _, fc := range files {
		if !fc.dirty() {
			continue
		}
		r.DirtyFiles++
		for _, idx := range slices.Sorted(maps.Keys(fc.pages)) {
			r.DirtyPages++
			start := idx * PageSize
			if fc == last.c && start < last.end && start+PageSize > last.off {
				continue // the write in flight: torn below
			}
			if rng.Float64() < c.Writeback {
				r.WrittenBack++
				if _, err := fc.persist(start, start+PageSize); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if fc := last.c; fc != nil {
		// The sector boundaries strictly inside the write; the device got as far as one.
		first := (last.off/SectorSize + 1) * SectorSize
		if first < last.end {
			n := (last.end-1-first)/SectorSize + 1
			upto := first + rng.Int64N(n)*SectorSize
			r.Torn = &Torn{File: fc.name, Off: last.off, Len: last.end - last.off, Kept: upto - last.off}
			if _, err := fc.persist(last.off, upto); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, fc := range files {
		fc.drop()
	}
	f.last = lastWrite{}
	return r, errors.Join(errs...)
}

// Unmount unmounts the filesystem. Without a Cut before, it writes every file's data back
// first, as an orderly shutdown does. It fails while a file on the mount is open (the
// program using it must have exited). Idempotent.
func (f *FS) Unmount() error {
	f.umu.Lock()
	defer f.umu.Unlock()
	if f.unmounted {
		return nil
	}
	f.mu.Lock()
	if f.stall != nil {
		close(f.stall) // no program may wait on the mount for ever
		f.stall = nil
	}
	f.mu.Unlock()
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		// go-fuse retries briefly itself: the kernel may still be closing the files of a
		// program that just exited.
		if err = f.server.Unmount(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("lazyfs: unmount %s: %w", f.mountpoint, err)
	}
	f.unmounted = true
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, c := range f.files {
		if !f.off && c.dirty() {
			if _, err := c.sync(); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, c.fd.Close())
	}
	for c := range f.gone {
		errs = append(errs, c.fd.Close())
	}
	clear(f.files)
	clear(f.gone)
	f.off = true
	return errors.Join(errs...)
}

// errno turns an error from a backing file into what the caller gets, logging it: the
// backing directory failing is not part of the simulation.
func (f *FS) errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	f.log.Error("lazyfs: backing file", "err", err)
	return fs.ToErrno(err)
}

// open returns the page cache of the regular file at the backing path p, counting one
// more handle on it. fresh says the file was just created: a cache left from a file that
// had its inode number is stale.
func (f *FS) open(ctx context.Context, p string, fresh bool) (*cached, syscall.Errno) {
	if errno := f.lock(ctx); errno != 0 {
		return nil, errno
	}
	defer f.mu.Unlock()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	c := f.files[st.Ino]
	if c != nil && fresh {
		f.forgetLocked(st.Ino, c)
		c = nil
	}
	if c == nil {
		// One descriptor per file, read-write when allowed, serves every handle: a sync
		// through a read-only handle must still write.
		fd, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			fd, err = os.Open(p)
		}
		if err != nil {
			return nil, fs.ToErrno(err)
		}
		if c, err = newCached(p, fd); err != nil {
			return nil, f.errno(errors.Join(err, fd.Close()))
		}
		f.files[st.Ino] = c
	}
	c.opens++
	return c, 0
}

// release counts one handle less. A file with data not yet synced stays cached after its
// last handle closes, as in a kernel's page cache: closing a file does not sync it.
func (f *FS) release(c *cached) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.opens--
	if c.opens > 0 || (c.dirty() && !c.orphan && !f.off) {
		return
	}
	if c.orphan {
		delete(f.gone, c)
	} else {
		for ino, fc := range f.files {
			if fc == c {
				delete(f.files, ino)
				break
			}
		}
	}
	if err := c.fd.Close(); err != nil {
		f.log.Warn("lazyfs: close backing file", "file", c.name, "err", err)
	}
}

// forget drops the cache of a file whose last link is gone: once no handle is open, its
// data can never be read again.
func (f *FS) forget(ino uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.files[ino]; c != nil {
		f.forgetLocked(ino, c)
	}
}

func (f *FS) forgetLocked(ino uint64, c *cached) {
	if f.last.c == c {
		f.last = lastWrite{}
	}
	delete(f.files, ino) // a new file may take the number
	if c.opens > 0 {
		c.orphan = true
		f.gone[c] = true
		return
	}
	if err := c.fd.Close(); err != nil {
		f.log.Warn("lazyfs: close backing file", "file", c.name, "err", err)
	}
}

// lock takes mu for an operation, or fails it with EIO once the power is cut, after
// stalling if the cut said so.
func (f *FS) lock(ctx context.Context) syscall.Errno {
	f.mu.Lock()
	if !f.off {
		return 0
	}
	stall := f.stall
	f.mu.Unlock()
	if stall != nil {
		select {
		case <-ctx.Done():
		case <-stall:
		}
	}
	return syscall.EIO
}

// check is lock for operations that only need the power on.
func (f *FS) check(ctx context.Context) syscall.Errno {
	errno := f.lock(ctx)
	if errno == 0 {
		f.mu.Unlock()
	}
	return errno
}

func (f *FS) read(ctx context.Context, c *cached, p []byte, off int64) (int, syscall.Errno) {
	if errno := f.lock(ctx); errno != 0 {
		return 0, errno
	}
	defer f.mu.Unlock()
	n, err := c.read(p, off)
	f.stats.Reads++
	f.stats.ReadBytes += int64(n)
	return n, f.errno(err)
}

func (f *FS) write(ctx context.Context, c *cached, data []byte, off int64) syscall.Errno {
	if errno := f.lock(ctx); errno != 0 {
		return errno
	}
	defer f.mu.Unlock()
	if err := c.write(data, off, time.Now()); err != nil {
		return f.errno(err)
	}
	f.stats.Writes++
	f.stats.WrittenBytes += int64(len(data))
	f.last = lastWrite{c: c, off: off, end: off + int64(len(data))}
	return 0
}

func (f *FS) truncate(ctx context.Context, c *cached, size int64) syscall.Errno {
	if errno := f.lock(ctx); errno != 0 {
		return errno
	}
	defer f.mu.Unlock()
	c.truncate(size, time.Now())
	if f.last.c == c {
		f.last = lastWrite{} // the write may be gone; a tear would bring it back
	}
	return 0
}

// allocate is fallocate(2): mode 0 grows the file to cover the range; keeping the size
// (FALLOC_FL_KEEP_SIZE) only reserves space, which a simulated disk has plenty of.
func (f *FS) allocate(ctx context.Context, c *cached, off, size uint64, mode uint32) syscall.Errno {
	const keepSize = 0x1 // FALLOC_FL_KEEP_SIZE
	switch mode {
	case 0:
		if errno := f.lock(ctx); errno != 0 {
			return errno
		}
		defer f.mu.Unlock()
		if end := int64(off + size); end > c.size {
			c.truncate(end, time.Now())
		}
		return 0
	case keepSize:
		return f.check(ctx)
	}
	return syscall.EOPNOTSUPP
}

// fsync writes c's data to the backing file once the device has taken its time: a power
// cut during that time loses it, and the fsync fails.
func (f *FS) fsync(ctx context.Context, c *cached) syscall.Errno {
	return f.flush(ctx, func() syscall.Errno {
		n, err := c.sync()
		f.stats.Syncs++
		f.stats.SyncedBytes += n
		if f.last.c == c {
			f.last = lastWrite{}
		}
		return f.errno(err)
	})
}

// flush runs apply (under mu, unless the power is cut by then) after FsyncDelay on the
// device, which flushes one at a time.
func (f *FS) flush(ctx context.Context, apply func() syscall.Errno) syscall.Errno {
	if f.delay > 0 {
		f.device.Lock()
		time.Sleep(f.delay)
		f.device.Unlock()
	}
	if errno := f.lock(ctx); errno != 0 {
		return errno
	}
	defer f.mu.Unlock()
	return apply()
}

// patch makes the attributes of a regular file, read from the backing directory, say what
// a reader sees: its size and modification time as the page cache has them.
func (f *FS) patch(a *fuse.Attr) {
	if a.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.files[a.Ino]; c != nil {
		f.patchFrom(c, a)
	}
}

func (f *FS) patchFrom(c *cached, a *fuse.Attr) {
	a.Size = uint64(c.size)
	a.Blocks = max(a.Blocks, (a.Size+SectorSize-1)/SectorSize)
	if !c.mtime.IsZero() {
		a.SetTimes(nil, &c.mtime, &c.mtime)
	}
}

// getattr answers for an open file: from its backing descriptor, which works after an
// unlink too.
func (f *FS) getattr(c *cached, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(c.fd.Fd()), &st); err != nil {
		return f.errno(err)
	}
	out.FromStat(&st)
	f.patchFrom(c, &out.Attr)
	return 0
}
