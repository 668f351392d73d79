package ezo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Options configures an Emulator.
type Options struct {
	// Link, when set, is a symlink kept pointing at the current device path, so a client
	// can always open the same name (as /dev/serial/by-id/... on a gateway). It is removed
	// while the probe is unplugged and when Run returns.
	Link string
	// Speed divides every delay of the circuit (reading, command, boot, continuous period):
	// 1 (or 0) is real time, 20 answers a pH reading in 45 ms. Unplug timing is not scaled.
	Speed float64
	// UnplugEvery is how long the probe stays plugged in under FaultUnplug (default 30s);
	// UnplugFor how long it then stays away (default 2s).
	UnplugEvery, UnplugFor time.Duration
	// Trace, when set, receives a transcript: `> "R\r"` for each command line received and
	// `< "7.620\r*OK\r"` for each piece sent, Go-quoted (see WriteFrame).
	Trace io.Writer
	// OnAttach is called, from Run's goroutine, with the device path each time the probe
	// appears on a new pseudo-terminal, before it answers anything there. An error stops
	// Run with that error.
	OnAttach func(path string) error
	Logger   *slog.Logger
}

// Emulator serves a Device on a pseudo-terminal. Create it with New; Run serves until its
// context ends. Unplug is safe for concurrent use.
type Emulator struct {
	dev    *Device
	opts   Options
	log    *slog.Logger
	unplug chan struct{}
	trace  io.Writer // nil once a trace write failed
}

// New returns an Emulator for dev. It starts nothing.
func New(dev *Device, opts Options) (*Emulator, error) {
	if dev == nil {
		return nil, errors.New("no device")
	}
	if opts.Speed == 0 {
		opts.Speed = 1
	}
	if !(opts.Speed > 0) || opts.Speed > 1e6 {
		return nil, fmt.Errorf("speed %v: must be within (0, 1e6]", opts.Speed)
	}
	if opts.UnplugEvery == 0 {
		opts.UnplugEvery = 30 * time.Second
	}
	if opts.UnplugFor == 0 {
		opts.UnplugFor = 2 * time.Second
	}
	if opts.UnplugEvery < 0 || opts.UnplugFor < 0 {
		return nil, errors.New("unplug durations must not be negative")
	}
	if dev.Unplugged() && opts.Link == "" {
		return nil, errors.New("fault unplug needs a link: a replugged probe comes back on a new device path, and only the link stays put")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Emulator{dev: dev, opts: opts, log: opts.Logger, unplug: make(chan struct{}, 1),
		trace: opts.Trace}, nil
}

// Unplug pulls the probe out now, whatever the fault settings; it comes back after
// Options.UnplugFor. It does not wait.
func (e *Emulator) Unplug() {
	select {
	case e.unplug <- struct{}{}:
	default:
	}
}

// attachment is the probe plugged into one pseudo-terminal.
type attachment struct {
	master, tty *os.File
	path        string
}

// Run serves the device until ctx ends, then removes the link and closes the terminal. A
// stop through ctx is not an error.
func (e *Emulator) Run(ctx context.Context) error {
	var greeting []Chunk // what the circuit says when it powers up on a new terminal
	for {
		a, err := e.attach()
		if err != nil {
			return err
		}
		unplugged, err := e.serve(ctx, a, greeting)
		e.detach(a)
		if err != nil || !unplugged {
			return err
		}
		e.log.Info("probe unplugged", "for", e.opts.UnplugFor)
		t := time.NewTimer(e.opts.UnplugFor)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		greeting = e.dev.PowerOn()
	}
}

func (e *Emulator) attach() (*attachment, error) {
	master, tty, err := openPTY()
	if err != nil {
		return nil, err
	}
	a := &attachment{master: master, tty: tty, path: tty.Name()}
	if e.opts.Link != "" {
		if err := relink(e.opts.Link, a.path); err != nil {
			master.Close()
			tty.Close()
			return nil, err
		}
	}
	e.log.Info("probe plugged in", "path", a.path, "link", e.opts.Link, "circuit", e.dev.Circuit())
	if e.opts.OnAttach != nil {
		if err := e.opts.OnAttach(a.path); err != nil {
			e.detach(a)
			return nil, err
		}
	}
	return a, nil
}

// relink points link at target atomically, refusing to replace anything but a symlink.
func relink(link, target string) error {
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("link %s exists and is not a symlink: refusing to replace it", link)
	}
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp) // a leftover of a crashed run; absence is the normal case
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link: %w", err)
	}
	return nil
}

// detach unplugs: the link goes first (as udev removes by-id links), then the terminal, so
// a client reading it sees a hang-up.
func (e *Emulator) detach(a *attachment) {
	if e.opts.Link != "" {
		// Remove the link only while it is ours: another emulator may have taken it over.
		if target, err := os.Readlink(e.opts.Link); err == nil && target == a.path {
			if err := os.Remove(e.opts.Link); err != nil {
				e.log.Warn("remove link", "err", err)
			}
		}
	}
	if err := a.master.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		e.log.Warn("close pseudo-terminal", "err", err)
	}
	if err := a.tty.Close(); err != nil {
		e.log.Warn("close pseudo-terminal", "err", err)
	}
}

// serve answers commands on one terminal until ctx ends (unplugged false) or the probe is
// unplugged (true).
func (e *Emulator) serve(ctx context.Context, a *attachment, greeting []Chunk) (unplugged bool, err error) {
	cmds := make(chan []byte, 8)
	var (
		readErr error // set before cmds is closed
		reader  sync.WaitGroup
	)
	reader.Go(func() {
		readErr = e.readCommands(a.master, cmds)
		close(cmds)
	})
	defer func() {
		// Closing the master ends the reader; wait for it, so no goroutine outlives Run.
		if cerr := a.master.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) && err == nil {
			err = fmt.Errorf("close pseudo-terminal: %w", cerr)
		}
		reader.Wait()
	}()

	var unplugC <-chan time.Time
	if e.dev.Unplugged() {
		t := time.NewTimer(e.opts.UnplugEvery)
		defer t.Stop()
		unplugC = t.C
	}
	cont := time.NewTimer(time.Hour)
	cont.Stop()
	defer cont.Stop()
	var contC <-chan time.Time
	arm := func() {
		period := e.dev.ContinuousPeriod()
		switch {
		case period == 0:
			cont.Stop()
			contC = nil
		case contC == nil:
			cont.Reset(e.scale(period))
			contC = cont.C
		}
	}

	if !e.write(ctx, a.master, greeting) {
		return false, nil
	}
	arm()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-e.unplug:
			return true, nil
		case <-unplugC:
			return true, nil
		case cmd, ok := <-cmds:
			if !ok {
				return false, fmt.Errorf("read %s: %w", a.path, readErr)
			}
			e.traceFrame('>', append(cmd, '\r'))
			if !e.write(ctx, a.master, e.dev.Handle(cmd)) {
				return false, nil
			}
			arm()
		case <-contC:
			contC = nil
			if !e.write(ctx, a.master, e.dev.Tick()) {
				return false, nil
			}
			arm()
		}
	}
}

// readCommands frames command lines from the terminal until it fails or is closed. Like
// the circuit's small input buffer, it drops lines it has no room for, and cuts overlong
// ones (the device then answers *ER). A closed terminal is a normal end.
func (e *Emulator) readCommands(r io.Reader, cmds chan<- []byte) error {
	buf := make([]byte, 512)
	var cur []byte
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			switch c {
			case '\r':
				select {
				case cmds <- cur:
				default:
					e.log.Debug("command dropped: input buffer full", "cmd", strconv.Quote(string(cur)))
				}
				cur = nil
			case '\n':
				// Terminals send CR LF; the circuit ignores the LF.
			default:
				if len(cur) <= maxCommand {
					cur = append(cur, c)
				}
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// writeStall is how long a piece of a reply may wait for room in the terminal. A UART
// never waits for its listener, so after that the rest of the reply is lost, as on a wire
// with nobody listening.
const writeStall = time.Second

// write sends chunks after their delays; false when ctx ended first.
func (e *Emulator) write(ctx context.Context, w *os.File, chunks []Chunk) bool {
	for _, c := range chunks {
		if c.Wait > 0 {
			t := time.NewTimer(e.scale(c.Wait))
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
		e.traceFrame('<', c.Data)
		for data := c.Data; len(data) > 0; {
			piece := data[:min(len(data), 4096)]
			if err := w.SetWriteDeadline(time.Now().Add(writeStall)); err != nil {
				e.log.Warn("write reply", "err", err)
				break
			}
			n, err := w.Write(piece)
			data = data[n:]
			if err != nil {
				e.log.Debug("reply lost: nobody reads the terminal", "lost_bytes", len(data), "err", err)
				break
			}
		}
		if ctx.Err() != nil {
			return false
		}
	}
	return true
}

func (e *Emulator) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) / e.opts.Speed)
}

func (e *Emulator) traceFrame(dir byte, data []byte) {
	if e.trace == nil {
		return
	}
	if err := WriteFrame(e.trace, dir, data); err != nil {
		e.log.Warn("trace stopped", "err", err)
		e.trace = nil
	}
}

// maxTraced is the longest frame written to a transcript in full.
const maxTraced = 256

// WriteFrame writes one transcript line: the direction ('>' received by the circuit, '<'
// sent by it) and the bytes, Go-quoted; a frame longer than 256 bytes is cut, with the
// number of bytes left out.
func WriteFrame(w io.Writer, dir byte, data []byte) error {
	var err error
	if len(data) > maxTraced {
		_, err = fmt.Fprintf(w, "%c %q +%d\n", dir, data[:maxTraced], len(data)-maxTraced)
	} else {
		_, err = fmt.Fprintf(w, "%c %q\n", dir, data)
	}
	return err
}
