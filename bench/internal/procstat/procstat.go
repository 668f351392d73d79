// Package procstat reads what Linux reports about a running process in /proc: its resident
// memory (VmRSS, and the peak VmHWM) and the CPU time it has used. The benchmark uses it to
// measure the agent from outside, exactly as a technician would on a station.
//
// The parsers take the file's contents, so they work on any system; the readers need
// Linux's /proc. Every function is safe for concurrent use.
package procstat

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrFormat means a /proc file did not have the expected shape.
var ErrFormat = errors.New("unexpected /proc format")

// Memory is a process's resident memory, in bytes.
type Memory struct {
	RSS  int64 // VmRSS: resident now
	Peak int64 // VmHWM: the most resident since the process started ("high water mark")
}

// ReadMemory reads /proc/<pid>/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	return ParseStatus(b)
}

// ParseStatus reads VmRSS and VmHWM from the contents of a /proc/<pid>/status file. Both
// must be present (a kernel thread or a zombie has neither).
func ParseStatus(b []byte) (Memory, error) {
	var (
		m             Memory
		hasRSS, hasHW bool
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		n, err := parseKB(value)
		if err != nil {
			return Memory{}, fmt.Errorf("%w: %s: %w", ErrFormat, key, err)
		}
		if key == "VmRSS" {
			m.RSS, hasRSS = n, true
		} else {
			m.Peak, hasHW = n, true
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if !hasRSS || !hasHW {
		return Memory{}, fmt.Errorf("%w: no VmRSS and VmHWM lines", ErrFormat)
	}
	return m, nil
}

// parseKB reads a value like "\t   30336 kB" into bytes.
func parseKB(s string) (int64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
	if strings.TrimSpace(unit) != "kB" {
		return 0, fmt.Errorf("value %q is not in kB", strings.TrimSpace(s))
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > 1<<50 {
		return 0, fmt.Errorf("value %q is not a size", num)
	}
	return n << 10, nil
}

// ClockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ). Linux has fixed
// it at 100 on every architecture the agent runs on.
const ClockTicks = 100

// maxTicks bounds one CPU time of a stat line: 2^36 ticks is over twenty years of CPU, and
// the sum of two still fits a Duration.
const maxTicks = 1 << 36

// ReadCPU reads the user plus system CPU time process pid has used so far, from
// /proc/<pid>/stat.
func ReadCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	return ParseStat(b)
}

// ParseStat reads utime + stime from the contents of a /proc/<pid>/stat file. The command
// name (field 2) is in parentheses and may itself contain spaces and parentheses, so the
// fields are counted from the last ')'.
func ParseStat(b []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, fmt.Errorf("%w: no command name", ErrFormat)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15).
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("%w: %d fields after the command name, want at least 13", ErrFormat, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 || n > maxTicks {
			return 0, fmt.Errorf("%w: CPU time %q", ErrFormat, f)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / ClockTicks), nil
}

// Sample is one reading of resident memory.
type Sample struct {
	At  time.Time
	RSS int64 // bytes
}

// SampleRSS reads the resident memory of pid every interval until ctx ends, and returns
// what it read. It runs in the caller's goroutine. It stops early, returning what it has
// and the error, when the process cannot be read (it exited).
func SampleRSS(ctx context.Context, pid int, every time.Duration) ([]Sample, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	var out []Sample
	for {
		m, err := ReadMemory(pid)
		if err != nil {
			return out, err
		}
		out = append(out, Sample{At: time.Now(), RSS: m.RSS})
		select {
		case <-ctx.Done():
			return out, nil
		case <-t.C:
		}
	}
}
