// Package testlog captures the log of a component under test, to show it when the test
// fails or to search it.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer holds a log in memory. Give it to slog.NewTextHandler (or any writer) and read it
// with String. Unlike t.Log, writes after the test has ended are harmless, so a component
// may log while it shuts down. The zero value is empty and ready; it is safe for
// concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
