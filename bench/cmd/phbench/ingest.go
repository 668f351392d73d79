package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/bench/internal/benchrows"
	"github.com/purehealth/purehealth/bench/internal/harness"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/shared/wire"
)

// warmStation sends the ingest comparison's warm-up batch.
const warmStation = "BENCH-WARMUP"

// encodedBatch is one batch as it goes on the wire, and the ack it must get.
type encodedBatch struct {
	body []byte
	ack  uint64
}

// ingestRun is one loader's result.
type ingestRun struct {
	rows int64
	wall time.Duration
}

func (r ingestRun) rate() float64 { return float64(r.rows) / r.wall.Seconds() }

// ingest compares, on one throwaway PostgreSQL with the cloud's schema, three ways of
// getting the same readings into measurements: the cloud's ingest endpoint (the whole
// path: HTTP, gzip JSON, validation, the COPY of the readings outside the station's
// committed ranges, rollups, latest values and live events, one transaction per batch), pgx's CopyFrom alone, and
// psql's \copy of the same rows as CSV. Each load starts from emptied tables.
func (b *bench) ingest(ctx context.Context) {
	s := b.opts.store
	b.printf("\n== cloud ingest: readings committed per second into measurements, same rows three ways\n")
	env, ok := b.startStoreEnv(ctx, nameIngest, nameCopyFrom)
	if !ok {
		return
	}
	defer b.stopStoreEnv(env)

	dir := filepath.Join(b.opts.work, "ingest")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		b.fail("%s: %v", nameIngest, err)
		return
	}
	stations := make([]string, s.ingestStations)
	for i := range stations {
		stations[i] = fmt.Sprintf("BENCH-%02d", i+1)
	}
	set := benchrows.Set{Stations: stations, PerStation: s.ingestRows / s.ingestStations, Spacing: s.ingestSpacing,
		End: time.Now().UTC().Truncate(time.Second).Add(-time.Minute), Seed: 1}
	if err := set.Validate(); err != nil {
		b.fail("%s: %v", nameIngest, err)
		return
	}
	total := int64(set.Len())
	b.printf("rows: %d readings = %d stations × %d, one of each of the 8 parameters every %s per station (%s to %s, %s),\n"+
		"      realistic values of a clean river; the same rows for every loader\n",
		total, len(stations), set.PerStation, s.ingestSpacing, set.Start().Format(time.RFC3339), set.End.Format(time.RFC3339), set.Span().Round(time.Second))
	b.printf("ours: %s serve, POST /v1/ingest of gzip JSON batches of %d readings (encoded before the clock starts), the %d stations at once\n"+
		"      (one connection each, batches of a station one after another: four stations keep both cores busy);\n"+
		"      cloud config: ingest.rate_per_station %d, burst %d, max_in_flight %d (raised so the limiter is not measured), database.max_conns default (10), log info\n"+
		"copyfrom: pgx CopyFrom (binary COPY) of all the rows, made before the clock starts, in one COPY on one connection\n"+
		"peer: psql -c '\\copy measurements(...) FROM file WITH (FORMAT csv)' of the same rows, one COPY\n"+
		"%d run(s) per loader, interleaved, median reported; tables emptied (TRUNCATE, CHECKPOINT) before every load\n",
		b.cloudBin(), s.ingestBatch, len(stations), benchRatePerStation, benchBurst, benchMaxInFlight, s.ingestReps)

	// Everything a load needs, made before any clock starts.
	csvPath := filepath.Join(dir, "rows.csv")
	if err := writeCSV(set, csvPath); err != nil {
		b.fail("%s: %v", nameIngest, err)
		return
	}
	batches, err := encodeBatches(set, s.ingestBatch)
	if err != nil {
		b.fail("%s: %v", nameIngest, err)
		return
	}
	var wireBytes int
	for _, st := range batches {
		for _, eb := range st {
			wireBytes += len(eb.body)
		}
	}
	rows := set.Rows()
	b.printf("prepared: %s of CSV, %d batches in %d gzip bytes (%.1f bytes/reading), the rows in memory for CopyFrom\n",
		fileSize(csvPath), int(total+int64(s.ingestBatch)-1)/s.ingestBatch, wireBytes, float64(wireBytes)/float64(total))

	addr, err := testproc.FreePort("tcp")
	if err != nil {
		b.fail("%s: %v", nameIngest, err)
		return
	}
	cfg := harness.CloudConfig{Dir: dir, Listen: addr, DatabaseURL: env.url(), RatePerStation: benchRatePerStation,
		Burst: benchBurst, MaxInFlight: benchMaxInFlight}
	prep, err := harness.PrepareCloud(ctx, b.cloudBin(), cfg, append([]string{warmStation}, stations...)...)
	if err != nil {
		b.fail("%s: %v", nameIngest, err)
		return
	}
	b.printf("   %s\n", prep.Storage)
	tokens := prep.Tokens
	cloud, err := harness.StartCloud(ctx, b.cloudBin(), cfg)
	if err != nil {
		b.fail("%s: %v", nameIngest, err)
		return
	}
	ours, copyFrom, peer := b.ingestRuns(ctx, env, cloud, set, tokens, batches, rows, csvPath)
	if err := cloud.Stop(); err != nil {
		b.fail("%s: ph-cloud did not shut down cleanly: %v; its log ends:\n%s", nameIngest, err, cloud.LogTail(10))
		return
	}
	if ctx.Err() != nil || len(peer) == 0 {
		return
	}
	b.printf("\n-- medians: ph-cloud ingest %s, pgx CopyFrom %s, psql \\copy %s readings/s\n", spread(ours), spread(copyFrom), spread(peer))
	b.add(nameIngest, median(ours), median(peer), "rows/s", benchline.Goal{Op: benchline.AtLeast, Value: 0.7},
		fmt.Sprintf("psql \\copy of the same %d rows (CSV) into measurements, same PostgreSQL, fsync on; ours: POST /v1/ingest, %d stations at once, gzip batches of %d, rows committed", total, len(stations), s.ingestBatch))
	b.add(nameCopyFrom, median(copyFrom), median(peer), "rows/s", benchline.Goal{Op: benchline.AtLeast, Value: 0.9},
		fmt.Sprintf("psql \\copy of the same %d rows (CSV) into measurements, same PostgreSQL, fsync on; ours: pgx CopyFrom of the rows, one COPY", total))
}

// ingestRuns warms the cloud up and runs the three loaders s.ingestReps times, rotating
// their order. It returns the rates of the runs that passed their checks.
func (b *bench) ingestRuns(ctx context.Context, env *storeEnv, cloud *harness.Cloud, set benchrows.Set, tokens []string,
	batches [][]encodedBatch, rows [][]any, csvPath string) (ours, copyFrom, peer []float64) {
	s := b.opts.store
	client := &http.Client{Timeout: 2 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: len(tokens), DisableCompression: true}}
	defer client.CloseIdleConnections()

	// A warm-up batch from a station of its own, with a reading in every day the rows
	// cover: the cloud makes those days' partitions, so that no loader finds one missing
	// (psql and CopyFrom would fill the default partition instead).
	warm := &wire.Batch{V: wire.Version, Station: warmStation, Agent: "phbench", SentAt: time.Now().UTC()}
	for at, seq := set.Start(), uint64(1); ; at, seq = at.Add(6*time.Hour), seq+1 {
		if at.After(set.End) {
			at = set.End
		}
		warm.Readings = append(warm.Readings, wire.Reading{Seq: seq, Time: at, Sensor: "ph-1", Param: "ph", Value: 7,
			Unit: "pH", Quality: "good", Source: "sensor"})
		if at.Equal(set.End) {
			break
		}
	}
	body, err := wire.Encode(warm)
	if err == nil {
		err = post(ctx, client, cloud.URL, tokens[0], encodedBatch{body, uint64(len(warm.Readings))})
	}
	if err != nil {
		b.fail("%s: warm-up batch: %v; ph-cloud's log ends:\n%s", nameIngest, err, cloud.LogTail(10))
		return
	}

	meter := &cpuMeter{}
	meter.add("ph-cloud", ownCPU(cloud.PID()))
	meter.add("postgres", treeCPU(env.pg.PID()))
	meter.add("phbench+psql", selfCPU)
	total := int64(set.Len())
	loaders := []struct {
		name string
		to   *[]float64
		run  func() (ingestRun, error)
	}{
		{"ph-cloud POST /v1/ingest", &ours, func() (ingestRun, error) {
			return b.postAll(ctx, client, cloud, tokens[1:], batches)
		}},
		{"pgx CopyFrom", &copyFrom, func() (ingestRun, error) { return copyAll(ctx, env, rows) }},
		{"psql \\copy", &peer, func() (ingestRun, error) {
			n, wall, err := env.psqlCopy(ctx, csvPath)
			return ingestRun{n, wall}, err
		}},
	}
	for rep := range s.ingestReps {
		for k := range loaders {
			l := loaders[(k+rep)%len(loaders)]
			if ctx.Err() != nil {
				return
			}
			run := fmt.Sprintf("%s run %d/%d", l.name, rep+1, s.ingestReps)
			b.printf("\n-- %s: %d readings, load average %s\n", run, total, loadAverage())
			if err := env.reset(ctx); err != nil {
				b.fail("%s: empty the tables: %v", run, err)
				return
			}
			if err := env.resetProfile(ctx); err != nil {
				b.fail("%s: %v", run, err)
				return
			}
			cpu0 := meter.snapshot()
			res, err := l.run()
			if err != nil {
				if ctx.Err() == nil {
					b.fail("%s: %v", run, err)
				}
				continue
			}
			b.printf("   %d rows in %.3f s: %.0f rows/s\n", res.rows, res.wall.Seconds(), res.rate())
			b.printf("   %s\n", meter.since(cpu0, res.wall, res.rows))
			if l.to == &ours && rep == 0 {
				b.printProfile(ctx, env, 8)
			}
			c := checks{}
			c.that(res.rows == total, "the loader reports %d rows (%d)", total, res.rows)
			stored, err := env.count(ctx, "SELECT count(*) FROM measurements")
			c.that(err == nil && stored == total, "measurements holds %d rows (%d, %v)", total, stored, err)
			strays, err := env.count(ctx, "SELECT count(*) FROM measurements_default")
			c.that(err == nil && strays == 0, "no row in the default partition (%d, %v)", strays, err)
			b.report(run, c)
			if c.ok() {
				*l.to = append(*l.to, res.rate())
			}
		}
	}
	return ours, copyFrom, peer
}

// postAll posts every station's batches, the stations at once and each station's batches
// one after another, and checks every answer and the cloud's counters.
func (b *bench) postAll(ctx context.Context, client *http.Client, cloud *harness.Cloud, tokens []string, batches [][]encodedBatch) (ingestRun, error) {
	before, err := cloud.Health(ctx)
	if err != nil {
		return ingestRun{}, err
	}
	var nb int64
	for _, st := range batches {
		nb += int64(len(st))
	}
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for i, st := range batches {
		g.Go(func() error {
			for _, eb := range st {
				if err := post(gctx, client, cloud.URL, tokens[i], eb); err != nil {
					return fmt.Errorf("station %d: %w", i+1, err)
				}
			}
			return nil
		})
	}
	err = g.Wait()
	wall := time.Since(start)
	if err != nil {
		return ingestRun{}, fmt.Errorf("%w; ph-cloud's log ends:\n%s", err, cloud.LogTail(10))
	}
	after, err := cloud.Health(ctx)
	if err != nil {
		return ingestRun{}, err
	}
	fresh := after.Ingest.NewReadings - before.Ingest.NewReadings
	b.printf("   ph-cloud /health: %d batches, %d new readings, %d duplicates in this run; refused so far %v\n",
		after.Ingest.Batches-before.Ingest.Batches, fresh, after.Ingest.Duplicates-before.Ingest.Duplicates, after.Ingest.Refused)
	if got := after.Ingest.Batches - before.Ingest.Batches; got != nb {
		return ingestRun{}, fmt.Errorf("the cloud counted %d batches, %d were sent", got, nb)
	}
	return ingestRun{rows: fresh, wall: wall}, nil
}

// post sends one batch and checks the acknowledgement.
func post(ctx context.Context, client *http.Client, baseURL, token string, eb encodedBatch) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/ingest", bytes.NewReader(eb.body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST /v1/ingest: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("POST /v1/ingest: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /v1/ingest: %s: %s", resp.Status, cutBytes(bytes.TrimSpace(body), 200))
	}
	var ack wire.Ack
	if err := json.Unmarshal(body, &ack); err != nil {
		return fmt.Errorf("POST /v1/ingest: answer %q: %w", cutBytes(body, 200), err)
	}
	if ack.AckedSeq != eb.ack {
		return fmt.Errorf("POST /v1/ingest: acked_seq %d, want %d", ack.AckedSeq, eb.ack)
	}
	return nil
}

// copyAll loads rows (values of benchrows.Columns) with one pgx CopyFrom on a new
// connection.
func copyAll(ctx context.Context, env *storeEnv, rows [][]any) (ingestRun, error) {
	conn, err := pgx.Connect(ctx, env.url())
	if err != nil {
		return ingestRun{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	start := time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"measurements"}, benchrows.Columns, pgx.CopyFromRows(rows))
	wall := time.Since(start)
	if err != nil {
		return ingestRun{}, fmt.Errorf("CopyFrom: %w", err)
	}
	return ingestRun{n, wall}, nil
}

// encodeBatches encodes each station's readings as the agent would send them, size
// readings a batch.
func encodeBatches(set benchrows.Set, size int) ([][]encodedBatch, error) {
	out := make([][]encodedBatch, len(set.Stations))
	for st := range set.Stations {
		for from := 0; from < set.PerStation; from += size {
			body, err := wire.Encode(set.Batch(st, from, size, "phbench"))
			if err != nil {
				return nil, err
			}
			out[st] = append(out[st], encodedBatch{body, uint64(min(from+size, set.PerStation))})
		}
	}
	return out, nil
}

func writeCSV(set benchrows.Set, path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return set.WriteCSV(f) // csv.Writer buffers
}

func fileSize(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6)
}
