package spool

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/purehealth/purehealth/shared/version"
)

// Format is the version of the file layout this code writes: the buckets, the meta keys
// and the reading encoding. Every file records the format it is in; Open upgrades an
// older file (see migrations) and refuses a newer one with ErrSchema, untouched.
//
// A change that an older agent would misread takes a new format and a migration from the
// previous one, and testdata/ keeps a file of every format ever released (see
// format_test.go), so each upgrade path stays tested.
//
// Format 2 adds the reading encoding's version 2 (a lab sample's provenance). Format 1
// files need no change: their readings stay version 1, which format 2 reads; the
// number keeps an older agent from opening a file it would find readings in that it
// cannot decode.
const Format = 2

// migrations[i] takes a file from format i+1 to format i+2, inside the transaction that
// opens it: a power cut during an upgrade leaves the old format, whole. len(migrations)
// is always Format-1.
var migrations = []migrateFunc{
	func(*bolt.Tx) error { return nil }, // 1 → 2: the new encoding is for new readings only
}

type migrateFunc func(tx *bolt.Tx) error

// Meta keys of the format (their names are part of it).
var (
	// keyFormat holds the format version, one byte while formats stay below 256 (an 8-byte
	// big-endian number after that). Its name predates the word "format".
	keyFormat = []byte("schema")
	// keyWrittenBy holds the version of the last agent that opened the file for writing,
	// so that an older agent can say which version it would need.
	keyWrittenBy = []byte("written_by")
)

// prepareFormat brings the file open in tx to format target, applying steps (steps[i]
// takes format i+1 to i+2), creates the buckets a new file lacks and records which agent
// opened it. It returns the format the file was in (0 for a new file). A file in a newer
// format than target is refused before anything in tx is written.
func prepareFormat(tx *bolt.Tx, target int, steps []migrateFunc) (int, error) {
	if len(steps) != target-1 {
		return 0, fmt.Errorf("format %d needs %d migrations, have %d", target, target-1, len(steps))
	}
	from := 0
	if meta := tx.Bucket(bucketMeta); meta != nil {
		var err error
		if from, err = decodeFormat(meta.Get(keyFormat)); err != nil {
			return 0, err
		}
	}
	if from > target {
		by := "an unknown version"
		if v := tx.Bucket(bucketMeta).Get(keyWrittenBy); len(v) > 0 {
			by = "ph-agent " + string(v)
		}
		return from, fmt.Errorf("%w: the file is in buffer format %d (written by %s) and this ph-agent %s reads formats up to %d: "+
			"run the newer ph-agent, or move the file aside to start with an empty buffer (its data stays in the moved file)",
			ErrSchema, from, by, version.Version, target)
	}
	if from > 0 {
		for v := from; v < target; v++ {
			if err := steps[v-1](tx); err != nil {
				return from, fmt.Errorf("upgrade buffer format %d to %d: %w", v, v+1, err)
			}
		}
	}
	for _, name := range [][]byte{bucketMeta, bucketKV, bucketMarks,
		Readings.bucket(), Alerts.bucket(), WQI.bucket()} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return from, fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if from != target {
		if err := meta.Put(keyFormat, encodeFormat(target)); err != nil {
			return from, err
		}
	}
	if string(meta.Get(keyWrittenBy)) != version.Version {
		if err := meta.Put(keyWrittenBy, []byte(version.Version)); err != nil {
			return from, err
		}
	}
	return from, nil
}

// decodeFormat reads the recorded format; nil (no record: a new file) is 0. A record that
// is neither encoding is refused like a newer format: nothing is written to such a file.
func decodeFormat(v []byte) (int, error) {
	switch len(v) {
	case 0:
		return 0, nil
	case 1:
		if v[0] > 0 {
			return int(v[0]), nil
		}
	case 8:
		if n := binary.BigEndian.Uint64(v); n > 0 && n < 1<<31 {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("%w: unreadable buffer format record %x", ErrSchema, v)
}

func encodeFormat(f int) []byte {
	if f < 256 {
		return []byte{byte(f)}
	}
	return binary.BigEndian.AppendUint64(nil, uint64(f))
}
