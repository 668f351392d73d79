package lazyfs_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/purehealth/purehealth/internal/lazyfs"
	"github.com/purehealth/purehealth/internal/lazyfs/lazyfstest"
	"github.com/purehealth/purehealth/internal/testproc"
)

// guard bounds every wait; it only turns a hang into a failure.
const guard = 30 * time.Second

// helperArg makes the test binary run a helper instead of the tests: mmap readers must be
// another process than the one serving the filesystem (a page fault on the mount would
// block a thread of the server's own runtime).
const helperArg = "lazyfs-helper"

var bins testproc.Builder

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == helperArg {
		if err := runHelper(os.Args[2], os.Args[3:]); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", os.Args[2], err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(testproc.Main(&bins, m.Run))
}

// disk is a backing directory and a mount point for it.
type disk struct {
	backing, mnt string
}

func newDisk(t *testing.T) disk {
	t.Helper()
	dir := t.TempDir()
	d := disk{backing: filepath.Join(dir, "backing"), mnt: filepath.Join(dir, "mnt")}
	require.NoError(t, os.Mkdir(d.backing, 0o700))
	require.NoError(t, os.Mkdir(d.mnt, 0o700))
	return d
}

func (d disk) mount(t *testing.T, o lazyfs.Options) *lazyfs.FS {
	t.Helper()
	return lazyfstest.Mount(t, d.backing, d.mnt, o)
}

// cut cuts the power and unmounts, and returns the report.
func cut(t *testing.T, fsys *lazyfs.FS, c lazyfs.Cut) lazyfs.CutReport {
	t.Helper()
	r, err := fsys.Cut(c)
	require.NoError(t, err)
	require.NoError(t, fsys.Unmount())
	return r
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// Data synced survives a power cut, data written after it is lost, and closing a file
// does not sync it: until the cut, readers of the mount see everything written.
func TestSyncedSurvivesUnsyncedIsLost(t *testing.T) {
	d := newDisk(t)
	fsys := d.mount(t, lazyfs.Options{})
	p := filepath.Join(d.mnt, "f")

	synced := bytes.Repeat([]byte("synced "), 2000)
	f, err := os.Create(p)
	require.NoError(t, err)
	_, err = f.Write(synced)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	// Overwrite a part, grow the file, close it: nothing of this is synced.
	_, err = f.WriteAt([]byte("LOST"), 10)
	require.NoError(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte("x"), 9000), int64(len(synced)))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	seen := bytes.Clone(synced)
	copy(seen[10:], "LOST")
	seen = append(seen, bytes.Repeat([]byte("x"), 9000)...)
	assert.Equal(t, seen, readFile(t, p), "readers see every write before the cut, closed or not")
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, int64(len(seen)), fi.Size(), "stat shows the size written")
	assert.Equal(t, synced, readFile(t, filepath.Join(d.backing, "f")), "the disk holds what was synced")
	st := fsys.Stats()
	assert.Equal(t, int64(1), st.Syncs)
	assert.Equal(t, 1, st.DirtyFiles)

	r := cut(t, fsys, lazyfs.Cut{})
	assert.Equal(t, 1, r.DirtyFiles)
	assert.Positive(t, r.DirtyPages)
	assert.Nil(t, r.Torn)
	assert.Equal(t, synced, readFile(t, filepath.Join(d.backing, "f")), "after the cut the disk holds what was synced")

	d.mount(t, lazyfs.Options{})
	assert.Equal(t, synced, readFile(t, p), "mounted again, the file is as synced")
}

// An orderly unmount writes everything back.
func TestUnmountWritesBack(t *testing.T) {
	d := newDisk(t)
	fsys := d.mount(t, lazyfs.Options{})
	require.NoError(t, os.WriteFile(filepath.Join(d.mnt, "f"), []byte("kept"), 0o600))
	require.NoError(t, fsys.Unmount())
	assert.Equal(t, []byte("kept"), readFile(t, filepath.Join(d.backing, "f")))
}

// A power cut in the middle of a write keeps a prefix of it that ends on a sector
// boundary.
func TestTornWriteIsAPrefix(t *testing.T) {
	old := bytes.Repeat([]byte{0x5A}, 2*lazyfs.PageSize)
	page := make([]byte, lazyfs.PageSize)
	for i := range page {
		page[i] = byte(i/lazyfs.SectorSize + 1) // each sector its own value
	}
	kept := map[int64]bool{}
	for seed := range uint64(6) {
		d := newDisk(t)
		require.NoError(t, os.WriteFile(filepath.Join(d.backing, "f"), old, 0o600))
		fsys := d.mount(t, lazyfs.Options{})
		f, err := os.OpenFile(filepath.Join(d.mnt, "f"), os.O_RDWR, 0)
		require.NoError(t, err)
		_, err = f.WriteAt(page, lazyfs.PageSize)
		require.NoError(t, err)
		require.NoError(t, f.Close())

		r := cut(t, fsys, lazyfs.Cut{Tear: true, Rand: rand.New(rand.NewPCG(seed, 3))})
		require.NotNil(t, r.Torn, "the write was torn")
		k := r.Torn.Kept
		require.True(t, k > 0 && k < lazyfs.PageSize && k%lazyfs.SectorSize == 0,
			"kept %d bytes: a whole number of sectors, not none and not all", k)
		kept[k] = true
		want := bytes.Clone(old)
		copy(want[lazyfs.PageSize:], page[:k])
		assert.Equal(t, want, readFile(t, filepath.Join(d.backing, "f")), "seed %d: the page holds %d bytes of the write, then the old data", seed, k)
	}
	assert.Greater(t, len(kept), 1, "the tears fell at different sectors: %v", kept)
}

// fdatasync, truncation, fallocate, rename and unlink behave as on a disk, and a renamed
// file keeps its unsynced data with it.
func TestNamespaceAndSizes(t *testing.T) {
	d := newDisk(t)
	fsys := d.mount(t, lazyfs.Options{})
	tmp, final := filepath.Join(d.mnt, "db.tmp"), filepath.Join(d.mnt, "db")

	f, err := os.Create(tmp)
	require.NoError(t, err)
	_, err = f.Write([]byte("0123456789"))
	require.NoError(t, err)
	require.NoError(t, syscall.Fdatasync(int(f.Fd())))
	require.NoError(t, syscall.Fallocate(int(f.Fd()), 0, 0, 3*lazyfs.PageSize))
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(3*lazyfs.PageSize), fi.Size(), "fallocate grows the file")
	require.NoError(t, f.Truncate(4))
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(tmp, final))
	assert.Equal(t, []byte("0123"), readFile(t, final), "the truncation travels with the rename")

	require.NoError(t, os.WriteFile(filepath.Join(d.mnt, "gone"), []byte("x"), 0o600))
	require.NoError(t, os.Remove(filepath.Join(d.mnt, "gone")))
	require.NoError(t, os.Truncate(final, 2)) // by path: no open handle
	assert.Equal(t, []byte("01"), readFile(t, final))

	cut(t, fsys, lazyfs.Cut{})
	entries, err := os.ReadDir(d.backing)
	require.NoError(t, err)
	require.Len(t, entries, 1, "renames and unlinks reach the disk at once")
	assert.Equal(t, "db", entries[0].Name())
	assert.Equal(t, []byte("0123456789"), readFile(t, filepath.Join(d.backing, "db")),
		"the fallocate and the truncations were not synced: the file is as fdatasync left it")
}

// An unlinked file stays readable through its open handle, unsynced data and all, and a
// new file of the same name starts empty.
func TestUnlinkedOpenFile(t *testing.T) {
	d := newDisk(t)
	d.mount(t, lazyfs.Options{})
	p := filepath.Join(d.mnt, "f")
	f, err := os.Create(p)
	require.NoError(t, err)
	_, err = f.Write([]byte("unsynced"))
	require.NoError(t, err)
	require.NoError(t, os.Remove(p))
	got := make([]byte, 16)
	n, err := f.ReadAt(got, 0)
	require.ErrorIs(t, err, io.EOF)
	assert.Equal(t, "unsynced", string(got[:n]))
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(8), fi.Size())
	require.NoError(t, f.Close())

	require.NoError(t, os.WriteFile(p, nil, 0o600))
	assert.Empty(t, readFile(t, p), "a new file of the same name starts empty")
}

// Two handles of one file take flock as on a disk (the kernel keeps the locks).
func TestFlockExcludes(t *testing.T) {
	d := newDisk(t)
	d.mount(t, lazyfs.Options{})
	p := filepath.Join(d.mnt, "lock")
	a, err := os.Create(p)
	require.NoError(t, err)
	defer a.Close()
	b, err := os.Open(p)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, syscall.Flock(int(a.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	err = syscall.Flock(int(b.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	assert.ErrorIs(t, err, syscall.EWOULDBLOCK, "a second lock on a locked file must be refused")
	require.NoError(t, syscall.Flock(int(a.Fd()), syscall.LOCK_UN))
	assert.NoError(t, syscall.Flock(int(b.Fd()), syscall.LOCK_SH|syscall.LOCK_NB), "once unlocked the lock is free")
}

// Once the power is cut every change fails with EIO.
func TestAfterTheCutChangesFail(t *testing.T) {
	d := newDisk(t)
	fsys := d.mount(t, lazyfs.Options{})
	f, err := os.Create(filepath.Join(d.mnt, "f"))
	require.NoError(t, err)
	defer f.Close()
	_, err = fsys.Cut(lazyfs.Cut{})
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("x"), 0)
	assert.ErrorIs(t, err, syscall.EIO, "write")
	assert.ErrorIs(t, f.Sync(), syscall.EIO, "fsync")
	assert.ErrorIs(t, os.Mkdir(filepath.Join(d.mnt, "dir"), 0o700), syscall.EIO, "mkdir")
	assert.ErrorIs(t, os.Rename(filepath.Join(d.mnt, "f"), filepath.Join(d.mnt, "g")), syscall.EIO, "rename")
}

// With Stall, a program using the mount at the cut hangs in its next operation until it
// is killed: it never learns that its fsync failed, and nothing it prints after the cut
// can come from a sync that did not reach the disk.
func TestStalledCutThenKill(t *testing.T) {
	d := newDisk(t)
	fsys := d.mount(t, lazyfs.Options{FsyncDelay: time.Millisecond})
	p := filepath.Join(d.mnt, "counter")
	cmd := exec.Command(os.Args[0], helperArg, "syncloop", p)
	cmd.Env = testproc.Env()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr // the helper's complaints, if any, go with the test's output
	require.NoError(t, cmd.Start())
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var printed []string
	for len(printed) < 20 {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "the helper ended early")
			printed = append(printed, l)
		case <-time.After(guard):
			t.Fatal("the helper printed nothing")
		}
	}
	_, err = fsys.Cut(lazyfs.Cut{Stall: true})
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // time enough to act on an error, had it come
	require.NoError(t, cmd.Process.Kill())
	err = cmd.Wait()
	for l := range lines {
		printed = append(printed, l)
	}
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, "signal: killed", exit.Error(), "the helper must die of the kill, not of an error")
	require.NoError(t, fsys.Unmount())

	onDisk := binary.BigEndian.Uint64(readFile(t, filepath.Join(d.backing, "counter")))
	for _, l := range printed {
		n, err := strconv.ParseUint(l, 10, 64)
		require.NoError(t, err, "helper line %q", l)
		assert.LessOrEqual(t, n, onDisk, "the helper reported %d synced, the disk holds %d", n, onDisk)
	}
}

// Every fsync and fdatasync takes FsyncDelay, one after the other. (A lower bound only:
// the delay is a sleep, so it cannot come short.)
func TestFsyncDelay(t *testing.T) {
	const delay, n = 20 * time.Millisecond, 5
	d := newDisk(t)
	fsys := d.mount(t, lazyfs.Options{FsyncDelay: delay})
	f, err := os.Create(filepath.Join(d.mnt, "f"))
	require.NoError(t, err)
	defer f.Close()
	start := time.Now()
	for i := range n {
		_, err := f.WriteAt([]byte{byte(i)}, 0)
		require.NoError(t, err)
		require.NoError(t, syscall.Fdatasync(int(f.Fd())))
	}
	assert.GreaterOrEqual(t, time.Since(start), n*delay)
	assert.Equal(t, int64(n), fsys.Stats().Syncs)
}

// Another process maps the file read-only and shared, as bbolt does, writes it with
// pwrite, grows it with ftruncate and syncs it now and then: the mapping shows every write
// at once, including in the grown part. Then the power is cut: the disk holds the file as
// the last fdatasync left it, while until then readers saw the last writes.
func TestMmapReadersSeeWrites(t *testing.T) {
	d := newDisk(t)
	fsys := d.mount(t, lazyfs.Options{})
	p := filepath.Join(d.mnt, "mapped")
	res := testproc.Run(t, guard, os.Args[0], helperArg, "mmap", p)
	require.Equal(t, 0, res.Code, "the mmap helper failed: %s", res.Stderr)
	var synced, final string
	_, err := fmt.Sscanf(res.Stdout, "synced %s\nfinal %s\n", &synced, &final)
	require.NoError(t, err, "helper output %q", res.Stdout)
	require.NotEqual(t, synced, final, "the helper wrote after its last sync")

	assert.Equal(t, final, digest(readFile(t, p)), "after the writer exited, readers see its last writes")
	cut(t, fsys, lazyfs.Cut{})
	assert.Equal(t, synced, digest(readFile(t, filepath.Join(d.backing, "mapped"))), "after the cut the disk holds the last synced content")
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// bbolt in another process commits transactions on the mount and is killed at a random
// instant; the power is cut (tearing the write in flight and keeping some pages written
// back). The database passes bbolt's check and holds every transaction that returned, in
// four rounds on the same disk.
func TestBboltSurvivesPowerCuts(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	d := newDisk(t)
	for round := range 4 {
		fsys := d.mount(t, lazyfs.Options{})
		p := testproc.Start(t, os.Args[0], helperArg, "bbolt", filepath.Join(d.mnt, "bolt.db"))
		first, err := strconv.ParseUint(p.Line(t, guard), 10, 64)
		require.NoError(t, err)
		committed := first
		for range 10 + rng.IntN(150) {
			line := p.Line(t, guard)
			committed, err = strconv.ParseUint(line, 10, 64)
			require.NoError(t, err, "helper said %q", line)
		}
		require.NoError(t, p.Kill())
		r := cut(t, fsys, lazyfs.Cut{Tear: true, Writeback: rng.Float64(), Rand: rand.New(rand.NewPCG(seed, uint64(round)))})
		last := checkBolt(t, filepath.Join(d.backing, "bolt.db"))
		t.Logf("round %d: commits %d..%d returned, %d on the disk after the cut (%s)", round+1, first, committed, last, r)
		require.GreaterOrEqual(t, last, committed, "a transaction that returned was lost")
	}
}

// checkBolt runs bbolt's consistency check on the file and checks that it holds every
// transaction up to the last it records, and returns that.
func checkBolt(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	var last uint64
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		var problems []error
		for e := range tx.Check() {
			problems = append(problems, e)
		}
		if len(problems) > 0 {
			return fmt.Errorf("bbolt check: %w", errors.Join(problems...))
		}
		b := tx.Bucket([]byte("n"))
		if b == nil {
			return errors.New("no bucket")
		}
		last = binary.BigEndian.Uint64(b.Get([]byte("last")))
		for i := uint64(1); i <= last; i++ {
			if v := b.Get(binary.BigEndian.AppendUint64(nil, i)); !bytes.Equal(v, boltValue(i)) {
				return fmt.Errorf("transaction %d of %d: value of %d bytes, want %d", i, last, len(v), len(boltValue(i)))
			}
		}
		return nil
	}))
	return last
}

func boltValue(i uint64) []byte { return bytes.Repeat([]byte{byte(i)}, 100+int(i%3000)) }

func runHelper(name string, args []string) error {
	switch name {
	case "mmap":
		return mmapHelper(args[0])
	case "bbolt":
		return bboltHelper(args[0])
	case "syncloop":
		return syncLoopHelper(args[0])
	}
	return fmt.Errorf("unknown helper %q", name)
}

// mmapHelper writes the file at path through pwrite while reading it through a shared
// read-only mapping, and prints the digest of the content at its last fdatasync and at the
// end.
func mmapHelper(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	size := int64(16 * lazyfs.PageSize)
	if err := f.Truncate(size); err != nil {
		return err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, 1<<20, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(m) //nolint:errcheck // the process ends
	rng := rand.New(rand.NewPCG(1, 2))
	page := make([]byte, lazyfs.PageSize)
	var synced string
	for i := 1; i <= 650; i++ {
		for j := range page {
			page[j] = byte(rng.Uint32())
		}
		at := rng.Int64N(size/lazyfs.PageSize) * lazyfs.PageSize
		if _, err := f.WriteAt(page, at); err != nil {
			return err
		}
		if !bytes.Equal(m[at:at+lazyfs.PageSize], page) {
			return fmt.Errorf("write %d: the mapping does not show the page written at %d", i, at)
		}
		if i%50 == 0 {
			grown := size + 8*lazyfs.PageSize
			if err := f.Truncate(grown); err != nil {
				return err
			}
			if bytes.Count(m[size:grown], []byte{0}) != int(grown-size) {
				return fmt.Errorf("write %d: the grown part of the mapping is not zeros", i)
			}
			size = grown
		}
		if i%100 == 0 {
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				return err
			}
			synced = digest(m[:size])
		}
	}
	fmt.Printf("synced %s\nfinal %s\n", synced, digest(m[:size]))
	return nil
}

// bboltHelper commits transactions to the database at path until it is killed, printing
// the number of each once its Update has returned.
func bboltHelper(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	var next uint64 = 1
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("n")); b != nil {
			next = binary.BigEndian.Uint64(b.Get([]byte("last"))) + 1
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := next; ; i++ {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("n"))
			if err != nil {
				return err
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, i), boltValue(i)); err != nil {
				return err
			}
			return b.Put([]byte("last"), binary.BigEndian.AppendUint64(nil, i))
		})
		if err != nil {
			return err
		}
		if _, err := fmt.Println(i); err != nil {
			return err
		}
	}
}

// syncLoopHelper writes a counter at the start of the file at path, fdatasyncs it and
// prints it, for ever.
func syncLoopHelper(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	for i := uint64(1); ; i++ {
		if _, err := f.WriteAt(binary.BigEndian.AppendUint64(nil, i), 0); err != nil {
			return err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return err
		}
		fmt.Println(i)
	}
}
