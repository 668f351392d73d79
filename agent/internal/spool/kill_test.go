package spool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const childEnv = "SPOOL_KILL_CHILD_DB"

// TestKill9 runs appenders in a child process, kills it with SIGKILL mid-stream, and
// checks that every append the child saw acknowledged is in the file, and the file
// passes bbolt's check.
func TestKill9(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		killChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "agent.db")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
		cmd.Env = append(os.Environ(), childEnv+"="+path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())

		acked := map[uint64]bool{}
		sc := bufio.NewScanner(out)
		deadline := time.Now().Add(300 * time.Millisecond)
		for sc.Scan() {
			seq, err := strconv.ParseUint(sc.Text(), 10, 64)
			if err != nil {
				continue // test framework output
			}
			acked[seq] = true
			if time.Now().After(deadline) && len(acked) > 100 {
				break
			}
		}
		require.NoError(t, cmd.Process.Kill(), "the child ended on its own: %s", &stderr)
		_ = cmd.Wait() // killed on purpose: the exit status says so

		mustCheck(t, path)
		s, err := Open(Options{Path: path})
		require.NoError(t, err, "round %d", round)
		assert.Empty(t, s.Quarantined(), "a killed writer leaves a sound file")
		have := map[uint64]bool{}
		for _, r := range allReadings(t, s) {
			have[r.Seq] = true
		}
		missing := 0
		for seq := range acked {
			if !have[seq] {
				missing++
			}
		}
		assert.Zero(t, missing, "round %d: %d of %d acknowledged readings lost", round, missing, len(acked))
		t.Logf("round %d: %d acknowledged, %d stored", round, len(acked), len(have))
		require.NoError(t, s.Close())
	}
}

// killChild appends from 16 goroutines until killed, printing each acknowledged seq.
func killChild(path string) {
	s, err := Open(Options{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				got, err := s.AppendReadings(context.Background(), series(fmt.Sprint("k", g), 1, t0, 0))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(w, got[0].Seq)
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
