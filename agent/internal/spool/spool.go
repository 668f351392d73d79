package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Defaults and limits of Options.
const (
	DefaultMaxBytes    = 512 << 20
	DefaultRetention   = 30 * 24 * time.Hour
	DefaultOpenTimeout = time.Second
	DefaultMaxBatch    = 4096

	// MinMaxBytes is the smallest bound Open accepts.
	MinMaxBytes = 1 << 20
	// MaxBytes32 caps MaxBytes where int is 32 bits (armv6/armv7). bbolt maps the whole file
	// into memory and grows the mapping in powers of two up to 1 GiB; on 32-bit ARM the
	// address space rarely has a free gigabyte, so the mapping would fail near that size.
	// With this cap the mapping never exceeds 512 MiB, and it is made once at Open.
	MaxBytes32 = 512 << 20
)

const (
	highWater   = 0.90           // above this share of MaxBytes an eviction pass starts
	lowWater    = 0.80           // and runs until UsedBytes is below this share
	expireEvery = time.Hour      // how often retention is applied without being asked
	markEvery   = time.Minute    // store-time granularity (see marks in evict.go)
	appendFill  = 1.0            // bbolt page fill for keys that only ever grow
	maxKeyLen   = 1024           // Put key limit
	maxValueLen = 1 << 20        // Put value and AppendRecord limit (further capped by MaxBytes/16)
	readDefault = 1000           // ReadingsAfter/RecordsAfter max when max <= 0
	lastDefault = 100            // Readings/LastRecords limit when limit <= 0
	allocMin    = 64 << 10       // file growth step bounds (see Open)
	allocMax    = 16 << 20       //
	anySeq      = math.MaxUint64 // "no upper bound" for seq ranges
	corruptLogN = 10             // corrupt values logged per Open, then only counted
	checkErrsN  = 10             // integrity-check errors kept for the log
	dirPerm     = os.FileMode(0o750)
	filePerm    = os.FileMode(0o600)
)

// Errors. Match them with errors.Is.
var (
	// ErrClosed is returned by every method after Close, and to appends still queued when
	// Close was called.
	ErrClosed = errors.New("spool closed")
	// ErrLocked is returned by Open when another process holds the database file.
	ErrLocked = errors.New("database is in use by another process (is ph-agent already running?)")
	// ErrInjected is the failure Faults makes write transactions return.
	ErrInjected = errors.New("injected commit failure")
	// ErrFull is returned by a write that does not fit even after the eviction policy has
	// dropped everything it may drop (what is left is alert events and key-value state).
	ErrFull = errors.New("buffer full of data that may not be dropped")
	// ErrSchema is returned by Open for a file in a newer format than this code reads (see
	// Format); the file is left as it was.
	ErrSchema = errors.New("buffer file written by a newer ph-agent")
	// ErrCorrupt is returned by a read that met a damaged page. The file needs the
	// quarantine that Open performs: restart the agent.
	ErrCorrupt = errors.New("database file is damaged")
	// ErrInvalid is returned for arguments that can never succeed.
	ErrInvalid = errors.New("invalid argument")
)

// Options configures Open. The zero value of every field but Path means its default.
type Options struct {
	// Path of the database file, normally <data_dir>/agent.db. Its directory is created.
	Path string
	// MaxBytes bounds the file (config buffer.max_bytes); 0 means DefaultMaxBytes. The
	// file never grows beyond it (see the package documentation for the policy).
	MaxBytes int64
	// Retention is how long forwarded records are kept locally; 0 means DefaultRetention.
	Retention time.Duration
	// OpenTimeout is how long Open waits for the file lock; 0 means DefaultOpenTimeout.
	OpenTimeout time.Duration
	// MaxBatch is the most records one group commit holds, and the most one call may
	// append; 0 means DefaultMaxBatch.
	MaxBatch int
	// NoSync skips fsync on commit. It is UNSAFE: a power cut can lose acknowledged
	// readings or corrupt the file. It exists only so benchmarks can show what durability
	// costs; production code must never set it.
	NoSync bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the spool's log; nil discards it.
	Logger *slog.Logger
	// OnEvict, if set, is called from the writer goroutine after every eviction pass that
	// removed or rewrote anything. It must not block and must not call the Spool's write
	// methods (Append*, Ack, Put, Expire), which wait for that goroutine.
	OnEvict func(Eviction)
	// Faults lets tests make write transactions fail; nil in production.
	Faults *Faults
	// OnCommit, if set, is told how long each group commit of appends, acks and puts took,
	// fsync included, whether it succeeded or not. It is called from the writer goroutine
	// and must not block.
	OnCommit func(time.Duration)
}

// Stream names one of the three append-only logs of the spool. Each has its own strictly
// increasing sequence, never reused (it survives the deletion of every record), and its
// own forward cursor.
type Stream uint8

// The streams.
const (
	Readings Stream = iota + 1 // validated measurements (AppendReadings)
	Alerts                     // alert lifecycle events, opaque JSON (AppendRecord)
	WQI                        // computed water quality index results, opaque JSON (AppendRecord)
)

const numStreams = 3

var allStreams = [numStreams]Stream{Readings, Alerts, WQI}

var streamNames = [numStreams]string{"readings", "alerts", "wqi"}

// String returns "readings", "alerts" or "wqi".
func (st Stream) String() string {
	if !st.valid() {
		return "stream(" + strconv.Itoa(int(st)) + ")"
	}
	return streamNames[st-1]
}

func (st Stream) valid() bool { return st >= Readings && st <= WQI }
func (st Stream) idx() int    { return int(st) - 1 }
func (st Stream) bucket() []byte {
	return []byte(streamNames[st-1])
}

// Record is one alert event or WQI result. Data is a copy, owned by the caller.
type Record struct {
	Seq  uint64
	Data []byte
}

// Query selects readings for Readings.
type Query struct {
	Param  telemetry.Param  // "" means every parameter
	Source telemetry.Source // "" means every source
	Since  time.Time        // zero means no lower bound; compared with the measurement time
	Limit  int              // 0 means 100
}

// Evicted counts what the eviction policy removed. In Stats it is cumulative over the
// life of the file (persisted); in Eviction it covers one pass.
type Evicted struct {
	ExpiredForwarded   uint64 // forwarded records older than Retention, all streams (step 1)
	Forwarded          uint64 // forwarded readings and WQI records inside Retention (step 2)
	Downsampled        uint64 // unforwarded raw readings replaced by hourly means (step 3)
	DownsampledBad     uint64 // of those, bad readings left out of a mean of usable values
	Means              uint64 // hourly means written in their place
	DroppedUnforwarded uint64 // unforwarded readings dropped outright (step 4)
	DroppedWQI         uint64 // unforwarded WQI records dropped outright (step 4)
}

// Unforwarded reports how many records not yet in the cloud were downsampled or dropped:
// non-zero means the cloud will never see some raw data.
func (e Evicted) Unforwarded() uint64 {
	return e.Downsampled + e.DroppedUnforwarded + e.DroppedWQI
}

func (e *Evicted) add(o Evicted) {
	e.ExpiredForwarded += o.ExpiredForwarded
	e.Forwarded += o.Forwarded
	e.Downsampled += o.Downsampled
	e.DownsampledBad += o.DownsampledBad
	e.Means += o.Means
	e.DroppedUnforwarded += o.DroppedUnforwarded
	e.DroppedWQI += o.DroppedWQI
}

// counters lists the fields with their persisted names (contract of the file format).
func (e *Evicted) counters() []struct {
	name string
	v    *uint64
} {
	return []struct {
		name string
		v    *uint64
	}{
		{"expired_forwarded", &e.ExpiredForwarded}, {"forwarded", &e.Forwarded},
		{"downsampled", &e.Downsampled}, {"downsampled_bad", &e.DownsampledBad},
		{"means", &e.Means}, {"dropped_unforwarded", &e.DroppedUnforwarded},
		{"dropped_wqi", &e.DroppedWQI},
	}
}

// Eviction reports one eviction pass.
type Eviction struct {
	Evicted
	// Full is true when the pass ran because UsedBytes crossed the high watermark; false
	// for the hourly retention pass.
	Full                  bool
	UsedBefore, UsedAfter int64
}

// Stats is a snapshot of the spool.
type Stats struct {
	Path      string
	FileBytes int64 // size of the file; it never shrinks
	UsedBytes int64 // pages in use; the rest of the file is free pages that appends reuse
	MaxBytes  int64

	Records     map[Stream]int    // stored records
	Unforwarded map[Stream]int    // stored records after the cursor (the backlog)
	LastSeq     map[Stream]uint64 // last assigned seq (0 = none yet), stored or not
	Cursor      map[Stream]uint64 // last acknowledged seq
	// OldestUnforwarded is the measurement time of the first reading after the cursor;
	// zero when there is none.
	OldestUnforwarded time.Time
	// BytesPerReading is UsedBytes divided by the stored readings (0 when there are none):
	// the whole cost of a reading, for an "hours of autonomy" estimate.
	BytesPerReading float64

	Evicted        Evicted // cumulative, persisted
	Commits        uint64  // write transactions committed since Open
	Appended       uint64  // records appended since Open
	CorruptSkipped uint64  // stored readings that did not decode and were skipped, since Open
}

// estimatedBytesPerReading is the cost of a reading in a buffer that holds none yet to
// measure it by: an encoded reading with its share of bbolt's pages comes to about this.
const estimatedBytesPerReading = 120

// AutonomyHours is how many hours the room left below the eviction watermark absorbs
// ratePerS readings a second with nothing forwarded, at the measured cost of a reading
// (or an estimate of it in a fresh buffer). ok is false when nothing arrives.
func (st Stats) AutonomyHours(ratePerS float64) (hours float64, ok bool) {
	if !(ratePerS > 0) {
		return 0, false
	}
	perReading := st.BytesPerReading
	if perReading <= 0 {
		perReading = estimatedBytesPerReading
	}
	room := float64(st.MaxBytes)*highWater - float64(st.UsedBytes)
	return max(room, 0) / (perReading * ratePerS) / 3600, true
}

// Spool is the agent's durable buffer. All methods are safe for concurrent use. One
// writer goroutine, started by Open and stopped by Close, owns every write transaction;
// reads run in parallel with it on bbolt's read transactions.
type Spool struct {
	path        string
	log         *slog.Logger
	now         func() time.Time
	onEvict     func(Eviction)
	onCommit    func(time.Duration)
	faults      *Faults
	retention   time.Duration
	maxBytes    int64
	high, low   int64
	hardLimit   int64 // what bbolt lets the file reach, given its growth step
	maxBatch    int
	maxValue    int
	pageSize    int64
	quarantined string
	db          *bolt.DB

	reqs       chan *request
	expireReqs chan chan error
	stop       chan struct{} // closed by Close
	done       chan struct{} // closed when the writer has returned
	closeOnce  sync.Once
	closeErr   error

	// Owned by the writer goroutine.
	st            state
	used          int64
	pass          *pass
	expireWaiting []chan error
	// dsFrontier: every reading below it has been through downsampling (step 3) already;
	// what is still raw there stays raw. It spares each pass a scan of the old means.
	dsFrontier  uint64
	stuckLogged time.Time // last "nothing left to evict" log
	carry       *request
	keys        []byte // the seq keys of the transaction being built (see apply)
	// lastAppends is how many appends the last group commit held, and lastCommit how
	// long it took: serve waits a little for as many (see there).
	lastAppends int
	lastCommit  time.Duration

	// appendReqs recycles the requests of AppendReadings with their buffers and channel.
	// A request goes back only once its caller has the writer's answer: the writer
	// answers last, after the commit, and bbolt holds on to values only until then.
	appendReqs sync.Pool

	mu  sync.Mutex // guards pub and pubUsed
	pub state
	// pubUsed mirrors used for Stats.
	pubUsed int64

	commits, appended, corrupt atomic.Uint64
}

// streamState is what the spool keeps about one stream. It is persisted in the meta
// bucket (next, cursor) or derived from the file at Open (the rest).
type streamState struct {
	next     uint64 // next seq to assign; starts at 1
	cursor   uint64 // last acknowledged seq
	count    int    // stored records
	fwd      int    // stored records with seq <= cursor
	markSeq  uint64 // seq of the newest mark; 0 = none
	markTime int64  // its time, unix nanoseconds
}

type state struct {
	s       [numStreams]streamState
	evicted Evicted
}

// Open opens or creates the spool at opts.Path and starts its writer goroutine.
//
// It checks the whole file first. A file that is not a readable bbolt database or fails
// the check is renamed to <path>.corrupt-<UTC time> (see Quarantined) and a fresh one is
// created, so a damaged SD card cannot put the agent in a crash loop. A file locked by
// another process is not damaged: Open returns ErrLocked after OpenTimeout.
func Open(opts Options) (*Spool, error) {
	if opts.Path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrInvalid)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxBytes := opts.MaxBytes
	switch {
	case maxBytes == 0:
		maxBytes = DefaultMaxBytes
	case maxBytes < MinMaxBytes:
		return nil, fmt.Errorf("%w: max bytes %d is below the minimum %d", ErrInvalid, maxBytes, MinMaxBytes)
	}
	if limit := MaxBytesOn(strconv.IntSize); maxBytes > limit {
		log.Warn("buffer bound lowered: 32-bit systems cannot map a larger file",
			"max_bytes", maxBytes, "limit", limit)
		maxBytes = limit
	}
	if opts.Retention < 0 || opts.OpenTimeout < 0 || opts.MaxBatch < 0 {
		return nil, fmt.Errorf("%w: negative retention, open timeout or max batch", ErrInvalid)
	}
	s := &Spool{
		path:       opts.Path,
		log:        log,
		now:        opts.Now,
		onEvict:    opts.OnEvict,
		onCommit:   opts.OnCommit,
		faults:     opts.Faults,
		retention:  orDefault(opts.Retention, DefaultRetention),
		maxBytes:   maxBytes,
		high:       int64(float64(maxBytes) * highWater),
		low:        int64(float64(maxBytes) * lowWater),
		maxBatch:   orDefault(opts.MaxBatch, DefaultMaxBatch),
		maxValue:   int(min(maxValueLen, maxBytes/16)),
		reqs:       make(chan *request, 256),
		expireReqs: make(chan chan error),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	timeout := orDefault(opts.OpenTimeout, DefaultOpenTimeout)

	// With the whole bound mapped (InitialMmapSize below), bbolt grows the file to the
	// high-water mark plus AllocSize, and refuses an allocation whose growth would pass
	// MaxSize. A growth step of 1/32 of the bound lets the file use all but about 3% of
	// MaxBytes while growing it rarely. (bbolt's default, 16 MiB, would make a small
	// file jump straight to its mapped size.)
	pg := int64(os.Getpagesize())
	alloc := min(max(maxBytes/32, allocMin), allocMax) / pg * pg
	s.hardLimit = maxBytes - alloc
	bopts := &bolt.Options{
		Timeout: timeout,
		// A synced freelist is rewritten in full on every commit: with a large, partly
		// free file that is the biggest write of a commit, and SD cards wear. bbolt
		// rebuilds the freelist at Open instead (the integrity check reads the file then
		// anyway), as etcd does.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		MaxSize:        int(maxBytes),
		// Map the whole bound at once: no remapping later (which waits for every reader),
		// and on 32-bit an address space too small fails here, not in the field.
		InitialMmapSize: int(maxBytes),
		NoSync:          opts.NoSync,
	}
	db, quarantined, err := openFile(s.path, bopts, int(alloc), timeout, s.now, log)
	if err != nil {
		return nil, err
	}
	s.db, s.quarantined = db, quarantined
	s.pageSize = int64(db.Info().PageSize)
	if err := s.load(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s.measure()
	go s.run()
	return s, nil
}

// MaxBytesOn is the largest MaxBytes Open keeps on a system whose int has intSize bits
// (strconv.IntSize): MaxBytes32 on 32-bit systems, and no limit of its own elsewhere.
func MaxBytesOn(intSize int) int64 {
	if intSize == 32 {
		return MaxBytes32
	}
	return math.MaxInt64
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// load prepares the buckets and reads the state. Counts are derived from the data rather
// than persisted, so they cannot drift.
func (s *Spool) load() error {
	from := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if from, err = prepareFormat(tx, Format, migrations); err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
		meta := tx.Bucket(bucketMeta)
		for _, st := range allStreams {
			ss := &s.st.s[st.idx()]
			ss.next = max(getU64(meta, metaKey("next", st)), 1)
			ss.cursor = getU64(meta, metaKey("cursor", st))
			b := tx.Bucket(st.bucket())
			if k, _ := b.Cursor().Last(); k != nil {
				ss.next = max(ss.next, seqOf(k)+1) // never reuse a stored seq
			}
			ss.cursor = min(ss.cursor, ss.next-1)
			ss.count = b.Stats().KeyN
			unf := 0
			c := b.Cursor()
			for k, _ := c.Seek(seqKey(ss.cursor + 1)); k != nil; k, _ = c.Next() {
				unf++
			}
			ss.fwd = ss.count - unf
			mc := tx.Bucket(bucketMarks).Cursor()
			if k, v := mc.Seek([]byte{byte(st) + 1}); k == nil {
				k, v = mc.Last()
				ss.markSeq, ss.markTime = markAt(st, k, v)
			} else {
				k, v = mc.Prev()
				ss.markSeq, ss.markTime = markAt(st, k, v)
			}
		}
		for _, c := range s.st.evicted.counters() {
			*c.v = getU64(meta, []byte("evicted."+c.name))
		}
		return writeMeta(tx, &state{}, &s.st)
	})
	if err == nil && from != 0 && from != Format {
		s.log.Info("buffer file upgraded", "path", s.path, "from_format", from, "format", Format)
	}
	return err
}

// markAt decodes a marks entry if it belongs to st.
func markAt(st Stream, k, v []byte) (uint64, int64) {
	if len(k) != 9 || k[0] != byte(st) || len(v) != 8 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(k[1:]), int64(binary.BigEndian.Uint64(v))
}

// Close stops the writer goroutine, waiting for the transaction in progress, and closes
// the file. Appends still queued get ErrClosed. Close is idempotent; every call returns
// the first call's result.
func (s *Spool) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// Quarantined returns the path a corrupt file was moved to by Open, or "".
func (s *Spool) Quarantined() string { return s.quarantined }

// Path returns the database file's path.
func (s *Spool) Path() string { return s.path }

// AppendReadings stores rs as one unit, assigns Seq (strictly increasing, in the order
// given) and Time in UTC in rs itself, as a later read returns them, and returns rs. It
// returns only when the commit holding them is durable (fsynced). Concurrent calls are
// grouped into one transaction by the writer goroutine, so durable throughput is far
// above the disk's fsync rate.
//
// On error nothing of this call is stored and no seq is consumed, with one exception: if
// ctx ends while the call waits, it returns ctx.Err() and the readings may still be
// committed. A call may hold at most MaxBatch readings. A full buffer does not fail an
// append: the eviction policy makes room.
func (s *Spool) AppendReadings(ctx context.Context, rs []telemetry.Reading) ([]telemetry.Reading, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	if len(rs) > s.maxBatch {
		return nil, fmt.Errorf("%w: %d readings in one call, more than the batch limit %d",
			ErrInvalid, len(rs), s.maxBatch)
	}
	r, _ := s.appendReqs.Get().(*request)
	if r == nil {
		r = &request{done: make(chan error, 1)}
	}
	*r = request{op: opAppend, stream: Readings, values: r.values[:0], buf: r.buf[:0], done: r.done}
	for i := range rs {
		start := len(r.buf)
		var err error
		if r.buf, err = encodeReading(r.buf, &rs[i]); err != nil {
			s.appendReqs.Put(r)
			return nil, fmt.Errorf("%w: reading %d: %w", ErrInvalid, i, err)
		}
		// An earlier value may point into an array append has since outgrown; it stays
		// valid, since nothing writes to that array again.
		r.values = append(r.values, r.buf[start:len(r.buf):len(r.buf)])
	}
	released, err := s.exchange(ctx, r)
	if released {
		defer s.appendReqs.Put(r)
	}
	if err != nil {
		return nil, err
	}
	for i := range rs {
		rs[i].Seq = r.first + uint64(i)
		rs[i].Time = rs[i].Time.UTC()
	}
	return rs, nil
}

// AppendRecord stores one alert event or WQI result (opaque bytes, normally JSON) in
// stream st and returns its seq. It has the durability and ctx semantics of
// AppendReadings and shares its group commits.
//
// puts are key-value writes (as Put) made in the same transaction: the record and the
// state it changes are stored together or not at all, so a retry after a failure cannot
// append the record twice.
func (s *Spool) AppendRecord(ctx context.Context, st Stream, data []byte, puts ...KV) (uint64, error) {
	return s.AppendRecords(ctx, st, [][]byte{data}, puts...)
}

// AppendRecords stores records in stream st as one unit, in the order given, and returns
// the seq of the first; otherwise as AppendRecord. A call may hold at most MaxBatch
// records.
func (s *Spool) AppendRecords(ctx context.Context, st Stream, records [][]byte, puts ...KV) (uint64, error) {
	if st != Alerts && st != WQI {
		return 0, fmt.Errorf("%w: AppendRecord takes alerts or wqi, not %v", ErrInvalid, st)
	}
	if len(records) == 0 || len(records) > s.maxBatch {
		return 0, fmt.Errorf("%w: %d records in one call, want 1 to the batch limit %d", ErrInvalid, len(records), s.maxBatch)
	}
	values := make([][]byte, len(records))
	for i, data := range records {
		if len(data) > s.maxValue {
			return 0, fmt.Errorf("%w: record of %d bytes, limit %d", ErrInvalid, len(data), s.maxValue)
		}
		values[i] = append([]byte{}, data...)
	}
	for _, kv := range puts {
		if err := s.checkKV(kv.Key, kv.Value); err != nil {
			return 0, err
		}
	}
	r := &request{op: opAppend, stream: st, values: values, done: make(chan error, 1)}
	for _, kv := range puts {
		v := kv.Value
		if v != nil {
			v = append([]byte{}, v...)
		}
		r.puts = append(r.puts, KV{Key: kv.Key, Value: v})
	}
	if err := s.do(ctx, r); err != nil {
		return 0, err
	}
	return r.first, nil
}

// AppendEvent stores one alert transition in the alerts stream together with the
// key-value writes of the same transition (nil deletes), in one transaction.
func (s *Spool) AppendEvent(ctx context.Context, event []byte, puts map[string][]byte) error {
	kvs := make([]KV, 0, len(puts))
	for k, v := range puts {
		kvs = append(kvs, KV{Key: k, Value: v})
	}
	_, err := s.AppendRecord(ctx, Alerts, event, kvs...)
	return err
}

// RecentEvents returns up to limit of the newest alert transitions, newest first.
func (s *Spool) RecentEvents(limit int) ([][]byte, error) {
	recs, err := s.LastRecords(Alerts, limit)
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r.Data
	}
	return out, err
}

// KV is one key-value write; a nil Value deletes the key.
type KV struct {
	Key   string
	Value []byte
}

func (s *Spool) checkKV(key string, value []byte) error {
	if len(key) == 0 || len(key) > maxKeyLen {
		return fmt.Errorf("%w: key of %d bytes (want 1 to %d)", ErrInvalid, len(key), maxKeyLen)
	}
	if len(value) > s.maxValue {
		return fmt.Errorf("%w: value of %d bytes, limit %d", ErrInvalid, len(value), s.maxValue)
	}
	return nil
}

// Ack records that every record of st up to seq is safe in the cloud, durably. The cursor
// only moves forward: a seq at or below it is a no-op. Acking a seq that was never
// assigned is an error. Acked records stay until retention or eviction removes them.
func (s *Spool) Ack(ctx context.Context, st Stream, seq uint64) error {
	if !st.valid() {
		return fmt.Errorf("%w: %v", ErrInvalid, st)
	}
	if seq <= s.Cursor(st) {
		return nil
	}
	return s.do(ctx, &request{op: opAck, stream: st, seq: seq, done: make(chan error, 1)})
}

// Cursor returns the last acknowledged seq of st (0 before the first Ack).
func (s *Spool) Cursor(st Stream) uint64 {
	if !st.valid() {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub.s[st.idx()].cursor
}

// Put stores value under key durably, through the same group commits as appends. A nil
// value deletes the key. Keys are 1 to 1024 bytes; values at most 1 MiB (and MaxBytes/16).
// The key-value state is never evicted.
func (s *Spool) Put(ctx context.Context, key string, value []byte) error {
	if err := s.checkKV(key, value); err != nil {
		return err
	}
	r := &request{op: opPut, key: key, done: make(chan error, 1)}
	if value != nil {
		r.values = [][]byte{append([]byte{}, value...)}
	}
	return s.do(ctx, r)
}

// Expire applies the retention (step 1 of the eviction policy) now and returns when it
// is done; if an eviction pass is in progress, when that pass is done too. The writer
// also applies the retention every hour and at Open.
func (s *Spool) Expire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	select {
	case s.expireReqs <- done:
	case <-s.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		select {
		case err := <-done:
			return err
		default:
			return ErrClosed
		}
	}
}

// do hands r to the writer and waits for its answer.
func (s *Spool) do(ctx context.Context, r *request) error {
	_, err := s.exchange(ctx, r)
	return err
}

// exchange is do, and reports whether the writer is done with r: it answered, or never
// got r. A request handed over but not answered (ctx ended, or the spool closed) may still
// be in the writer's hands.
func (s *Spool) exchange(ctx context.Context, r *request) (released bool, err error) {
	if err := ctx.Err(); err != nil {
		return true, err
	}
	select {
	case <-s.stop:
		return true, ErrClosed
	default:
	}
	select {
	case s.reqs <- r:
	case <-s.stop:
		return true, ErrClosed
	case <-ctx.Done():
		return true, ctx.Err()
	}
	select {
	case err := <-r.done:
		return true, err
	case <-ctx.Done():
		// The answer may have arrived at the same instant; prefer it.
		select {
		case err := <-r.done:
			return true, err
		default:
			return false, ctx.Err()
		}
	case <-s.done:
		select {
		case err := <-r.done:
			return true, err
		default:
			return false, ErrClosed
		}
	}
}

// view runs fn in a read transaction. A damaged page makes bbolt panic, or fault if the
// disk fails under the memory map; both become ErrCorrupt here instead of killing the
// process from whatever goroutine happened to read.
func (s *Spool) view(fn func(tx *bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
			s.log.Error("reading the buffer failed: the file is damaged and will be quarantined at the next start",
				"path", s.path, "err", r)
		}
	}()
	err = s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// ReadingsAfter returns up to max readings with seq > after, in seq order (the uplink's
// read; gaps left by eviction are skipped). max <= 0 means 1000.
func (s *Spool) ReadingsAfter(after uint64, max int) ([]telemetry.Reading, error) {
	if max <= 0 {
		max = readDefault
	}
	if after == anySeq {
		return nil, nil
	}
	var out []telemetry.Reading
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(Readings.bucket()).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			r, err := decodeReading(seqOf(k), v)
			if err != nil {
				s.skipCorrupt(seqOf(k), err)
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// RecordsAfter returns up to max records of st (Alerts or WQI) with seq > after, in seq
// order. max <= 0 means 1000.
func (s *Spool) RecordsAfter(st Stream, after uint64, max int) ([]Record, error) {
	if st != Alerts && st != WQI {
		return nil, fmt.Errorf("%w: RecordsAfter takes alerts or wqi, not %v", ErrInvalid, st)
	}
	if max <= 0 {
		max = readDefault
	}
	if after == anySeq {
		return nil, nil
	}
	var out []Record
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(st.bucket()).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			out = append(out, Record{Seq: seqOf(k), Data: append([]byte{}, v...)})
		}
		return nil
	})
	return out, err
}

// Readings returns stored readings newest first (by seq) that match q. With a filter that
// matches little it reads the whole buffer.
func (s *Spool) Readings(q Query) ([]telemetry.Reading, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = lastDefault
	}
	var out []telemetry.Reading
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(Readings.bucket()).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			if q.Param != "" || !q.Since.IsZero() {
				match, t, err := peekReading(v, q.Param)
				if err != nil {
					s.skipCorrupt(seqOf(k), err)
					continue
				}
				if (q.Param != "" && !match) || t.Before(q.Since) {
					continue
				}
			}
			r, err := decodeReading(seqOf(k), v)
			if err != nil {
				s.skipCorrupt(seqOf(k), err)
				continue
			}
			if q.Source != "" && r.Source != q.Source {
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// LastRecords returns up to limit records of st (Alerts or WQI), newest first. limit <= 0
// means 100.
func (s *Spool) LastRecords(st Stream, limit int) ([]Record, error) {
	if st != Alerts && st != WQI {
		return nil, fmt.Errorf("%w: LastRecords takes alerts or wqi, not %v", ErrInvalid, st)
	}
	if limit <= 0 {
		limit = lastDefault
	}
	var out []Record
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(st.bucket()).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			out = append(out, Record{Seq: seqOf(k), Data: append([]byte{}, v...)})
		}
		return nil
	})
	return out, err
}

// Get returns a copy of the value stored under key, or nil, nil when there is none.
func (s *Spool) Get(key string) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketKV).Cursor().Seek([]byte(key))
		if k != nil && string(k) == key {
			out = append(make([]byte, 0, len(v)), v...)
		}
		return nil
	})
	return out, err
}

// Scan calls fn for every key that starts with prefix, in key order, with copies. fn runs
// after the read transaction has ended, so it may call any method of the Spool. An error
// from fn stops the scan and is returned.
func (s *Spool) Scan(prefix string, fn func(key string, value []byte) error) error {
	type kv struct {
		k string
		v []byte
	}
	var all []kv
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKV).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && len(k) >= len(p) && string(k[:len(p)]) == prefix; k, v = c.Next() {
			all = append(all, kv{string(k), append(make([]byte, 0, len(v)), v...)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range all {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns a snapshot of the spool.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st, used := s.pub, s.pubUsed
	s.mu.Unlock()
	out := Stats{
		Path: s.path, UsedBytes: used, MaxBytes: s.maxBytes,
		Records: map[Stream]int{}, Unforwarded: map[Stream]int{},
		LastSeq: map[Stream]uint64{}, Cursor: map[Stream]uint64{},
		Evicted:  st.evicted,
		Commits:  s.commits.Load(),
		Appended: s.appended.Load(), CorruptSkipped: s.corrupt.Load(),
	}
	if fi, err := os.Stat(s.path); err == nil {
		out.FileBytes = fi.Size()
	}
	for _, stream := range allStreams {
		ss := st.s[stream.idx()]
		out.Records[stream] = ss.count
		out.Unforwarded[stream] = ss.count - ss.fwd
		out.LastSeq[stream] = ss.next - 1
		out.Cursor[stream] = ss.cursor
	}
	if n := out.Records[Readings]; n > 0 {
		out.BytesPerReading = float64(used) / float64(n)
	}
	cursor := st.s[Readings.idx()].cursor
	_ = s.view(func(tx *bolt.Tx) error { // a closed spool simply reports no oldest time
		c := tx.Bucket(Readings.bucket()).Cursor()
		for k, v := c.Seek(seqKey(cursor + 1)); k != nil; k, v = c.Next() {
			if _, t, err := peekReading(v, ""); err == nil {
				out.OldestUnforwarded = t
				break
			}
		}
		return nil
	})
	return out
}

// skipCorrupt logs (a few times) and counts a stored reading that does not decode. It is
// skipped rather than returned as an error, so one bad value cannot stall the uplink.
func (s *Spool) skipCorrupt(seq uint64, err error) {
	if n := s.corrupt.Add(1); n <= corruptLogN {
		s.log.Error("skipping stored reading that does not decode", "seq", seq, "err", err)
	}
}

// Key layout.
var (
	bucketMeta  = []byte("meta")
	bucketKV    = []byte("kv")
	bucketMarks = []byte("marks")
)

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func seqOf(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

func metaKey(what string, st Stream) []byte { return []byte(what + "." + st.String()) }

func getU64(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func putU64(b *bolt.Bucket, k []byte, v uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, v))
}

// writeMeta persists what changed between old and new.
func writeMeta(tx *bolt.Tx, old, new *state) error {
	meta := tx.Bucket(bucketMeta)
	for _, st := range allStreams {
		o, n := old.s[st.idx()], new.s[st.idx()]
		if o.next != n.next {
			if err := putU64(meta, metaKey("next", st), n.next); err != nil {
				return err
			}
		}
		if o.cursor != n.cursor {
			if err := putU64(meta, metaKey("cursor", st), n.cursor); err != nil {
				return err
			}
		}
	}
	if old.evicted != new.evicted {
		oc, nc := old.evicted.counters(), new.evicted.counters()
		for i := range nc {
			if *oc[i].v != *nc[i].v {
				if err := putU64(meta, []byte("evicted."+nc[i].name), *nc[i].v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
