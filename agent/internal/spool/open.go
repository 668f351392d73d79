package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// corruptError marks a file that is not a usable database: it gets quarantined.
type corruptError struct{ cause error }

func (e *corruptError) Error() string { return "corrupt database: " + e.cause.Error() }
func (e *corruptError) Unwrap() error { return e.cause }

// openFile returns the database at path opened for writing, after making sure it exists
// (created atomically), passes bbolt's integrity check, and quarantining it once if not.
//
// alloc is the file growth step (DB.AllocSize), applied to every handle that writes.
func openFile(path string, opts *bolt.Options, alloc int, timeout time.Duration, now func() time.Time, log *slog.Logger) (*bolt.DB, string, error) {
	if err := os.MkdirAll(filepath.Dir(path), dirPerm); err != nil {
		return nil, "", fmt.Errorf("create data directory: %w", err)
	}
	quarantined := ""
	for {
		db, err := openChecked(path, opts, alloc, timeout)
		if err == nil {
			removeStaleTemps(path, log)
			return db, quarantined, nil
		}
		var ce *corruptError
		if !errors.As(err, &ce) || quarantined != "" {
			return nil, "", err
		}
		if quarantined, err = quarantine(path, now); err != nil {
			return nil, "", fmt.Errorf("quarantine %s (%w): %w", path, ce, err)
		}
		log.Error("database file is corrupt: moved aside, starting with an empty buffer",
			"path", path, "quarantined", quarantined, "err", ce.cause)
	}
}

// openChecked creates path if it is missing, checks it read-only, then opens it for
// writing. The check runs on a read-only handle because bbolt's read-write open already
// walks the file to rebuild its freelist and panics if the file is damaged.
func openChecked(path string, opts *bolt.Options, alloc int, timeout time.Duration) (*bolt.DB, error) {
	switch fi, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		if err := create(path, opts, alloc); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case fi.Size() == 0:
		return nil, &corruptError{errors.New("empty file")}
	}
	if err := check(path, timeout); err != nil {
		return nil, err
	}
	db, err := openRW(path, opts)
	if err != nil {
		return nil, err
	}
	db.AllocSize = alloc
	return db, nil
}

// check opens path read-only and runs bbolt's consistency check on it.
func check(path string, timeout time.Duration) (err error) {
	defer func() {
		if r := recover(); r != nil {
			// The handle, if any, is left open: closing it could wait forever on a
			// transaction the panic interrupted. This happens at most once per Open.
			err = &corruptError{fmt.Errorf("panic while checking: %v", r)}
		}
	}()
	db, err := bolt.Open(path, filePerm, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return classify(path, err)
	}
	// bbolt's own check rebuilds the freelist first, walking the tree in a goroutine of
	// its own where a damaged page panics beyond anyone's recover (and a page past the end
	// of a truncated file faults). Walk it here first, where both are caught.
	if err := walk(db); err != nil {
		return errors.Join(&corruptError{err}, db.Close())
	}
	var found []error
	n := 0
	verr := db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() { // drain: Check's goroutine must finish
			n++
			if len(found) < checkErrsN {
				found = append(found, e)
			}
		}
		return nil
	})
	if cerr := db.Close(); verr == nil {
		verr = cerr
	}
	if n > 0 {
		return &corruptError{fmt.Errorf("integrity check found %d problems: %w", n, errors.Join(found...))}
	}
	if verr != nil {
		return &corruptError{verr}
	}
	return nil
}

// walk reads every page reachable from the root (every bucket, key and value) in a
// goroutine that turns memory faults into panics, and recovers them.
func walk(db *bolt.DB) error {
	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("reading the file: %v", r)
			}
		}()
		var sink byte
		err := db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
				sink ^= walkBucket(b)
				return nil
			})
		})
		runtime.KeepAlive(sink) // the reads are the point; keep them
		done <- err
	}()
	return <-done
}

// walkBucket touches every key and the last byte of every value (bringing in overflow
// pages) of b and its nested buckets.
func walkBucket(b *bolt.Bucket) byte {
	var sink byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		switch {
		case v == nil:
			if nb := b.Bucket(k); nb != nil {
				sink ^= walkBucket(nb)
			}
		case len(v) > 0:
			sink ^= v[len(v)-1]
		}
		sink ^= k[len(k)-1]
	}
	return sink
}

// openRW opens path for writing.
func openRW(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &corruptError{fmt.Errorf("panic while opening: %v", r)}
		}
	}()
	db, err = bolt.Open(path, filePerm, opts)
	if err != nil {
		return nil, classify(path, err)
	}
	return db, nil
}

// classify turns an error from bolt.Open into ErrLocked, a plain error (the file may be
// fine: no permission, out of memory, I/O trouble), or a corruptError.
func classify(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("open %s: %w", path, ErrLocked)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist),
		errors.Is(err, syscall.ENOMEM), errors.Is(err, syscall.EIO),
		errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EROFS),
		errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE),
		errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		return fmt.Errorf("open %s: %w", path, err)
	}
	return &corruptError{err}
}

// create makes a new, empty database at path atomically: it is built and synced under a
// temporary name, then linked into place and the directory synced, so a power cut leaves
// either no file or a complete one.
func create(path string, opts *bolt.Options, alloc int) error {
	tmp := path + ".new-" + strconv.Itoa(os.Getpid())
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create database: %w", err)
	}
	o := *opts
	o.NoSync = false
	db, err := bolt.Open(tmp, filePerm, &o)
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	db.AllocSize = alloc
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := prepareFormat(tx, Format, migrations)
		return err
	}); err != nil {
		return errors.Join(fmt.Errorf("create database: %w", err), db.Close(), os.Remove(tmp))
	}
	if err := db.Close(); err != nil {
		return errors.Join(fmt.Errorf("create database: %w", err), os.Remove(tmp))
	}
	if err := syncFile(tmp); err != nil {
		return errors.Join(fmt.Errorf("create database: %w", err), os.Remove(tmp))
	}
	// Link, unlike rename, never replaces: if another process created the file
	// meanwhile, we open theirs (and find it locked).
	switch err := os.Link(tmp, path); {
	case err == nil, errors.Is(err, fs.ErrExist):
		if err := os.Remove(tmp); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	default: // a file system without hard links
		if err := os.Rename(tmp, path); err != nil {
			return errors.Join(fmt.Errorf("create database: %w", err), os.Remove(tmp))
		}
	}
	return syncDir(filepath.Dir(path))
}

// quarantine renames a corrupt file to <path>.corrupt-<UTC time>, keeping it for
// forensics, and returns the new name.
func quarantine(path string, now func() time.Time) (string, error) {
	base := path + ".corrupt-" + now().UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			break
		}
		name = base + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(path, name); err != nil {
		return "", err
	}
	return name, syncDir(filepath.Dir(path))
}

// removeStaleTemps deletes files left by a create that a crash interrupted. It runs while
// we hold the database lock, so no other process is creating.
func removeStaleTemps(path string, log *slog.Logger) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+".new-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Warn("list data directory", "err", err)
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				log.Warn("remove leftover file", "path", e.Name(), "err", err)
			}
		}
	}
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	if err := d.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync directory: %w", err), d.Close())
	}
	return d.Close()
}
