package procstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Times is what a /proc/<pid>/stat file says about a process's CPU use and parent.
type Times struct {
	PPID int
	// CPU is the process's own user + system time.
	CPU time.Duration
	// Children is the user + system time of its children that have exited and been
	// waited for (cutime + cstime).
	Children time.Duration
}

// ParseTimes reads the parent and the CPU times from the contents of a /proc/<pid>/stat
// file (fields 4, 14–17, counted after the command name as ParseStat does).
func ParseTimes(b []byte) (Times, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return Times{}, fmt.Errorf("%w: no command name", ErrFormat)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 15 {
		return Times{}, fmt.Errorf("%w: %d fields after the command name, want at least 15", ErrFormat, len(fields))
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil || ppid < 0 {
		return Times{}, fmt.Errorf("%w: parent pid %q", ErrFormat, fields[1])
	}
	var ticks [4]int64
	for i, f := range fields[11:15] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 || n > maxTicks {
			return Times{}, fmt.Errorf("%w: CPU time %q", ErrFormat, f)
		}
		ticks[i] = n
	}
	tick := time.Second / ClockTicks
	return Times{PPID: ppid, CPU: time.Duration(ticks[0]+ticks[1]) * tick,
		Children: time.Duration(ticks[2]+ticks[3]) * tick}, nil
}

// ReadTreeCPU returns the CPU time used so far by process pid and all its descendants:
// their own times, plus the times of the descendants that have already exited (counted in
// their parents' cutime and cstime). A server that forks a process per connection, such as
// PostgreSQL, is measured whole this way. Processes that exit between the scan's reads are
// missed; the error is only for pid itself.
func ReadTreeCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	root, err := ParseTimes(b)
	if err != nil {
		return 0, err
	}
	all := map[int]Times{pid: root}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		p, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if err != nil || p == pid {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		if t, err := ParseTimes(b); err == nil {
			all[p] = t
		}
	}
	return treeCPU(pid, all), nil
}

// treeCPU sums the times of root and its descendants in all.
func treeCPU(root int, all map[int]Times) time.Duration {
	children := map[int][]int{}
	for p, t := range all {
		if p != root {
			children[t.PPID] = append(children[t.PPID], p)
		}
	}
	var (
		sum   time.Duration
		queue = []int{root}
		seen  = map[int]bool{}
	)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue // a cycle cannot happen in /proc, but a fuzzed map may hold one
		}
		seen[p] = true
		t := all[p]
		sum += t.CPU + t.Children
		queue = append(queue, children[p]...)
	}
	return sum
}
