// Package serialprobe reads Atlas Scientific EZO circuits (pH, DO, EC, RTD) over a serial
// port, speaking their UART text protocol (science §5), and hands each reading to the
// agent's pipeline.
//
// A Probe owns its port. Run opens it, identifies the circuit (i) and sets it up — response
// codes learned (*OK,?), continuous mode off (C,0), the parameter's output enabled and
// located (O,? on DO and EC circuits), the temperature scale read (S,? on RTD) — then sends
// R every Interval and parses the value line and its *OK. The water temperature, when the
// station has a fresh one, is sent with T,<°C> before a reading whenever it moved by 0.5 °C.
//
// What the line can do and what the driver does about it, each counted in Health under the
// kind shown:
//
//   - *ER: no reading ("er"). *OV / *UV: the reading is stored flagged as a probe error, so
//     its quality is bad ("ov", "uv"). *RS / *RE: the circuit restarted; it is identified
//     again before the next reading ("reset", once per restart). *SL / *WA: the command is
//     sent again ("asleep" if it still fails).
//   - Lines nobody asked for (continuous-mode leftovers, late replies) are dropped; when
//     readings keep arriving unasked, continuous mode is turned off again.
//   - *OK,0 (no *OK after answers): learned at identification, or when an answer is
//     complete but its *OK never comes.
//   - Garbage (control bytes, non-ASCII, broken UTF-8, unknown lines): dropped, the receiver
//     resynchronises at the next carriage return ("garbage"). A line longer than MaxLine is
//     dropped up to its carriage return ("overlong"): the line buffer is fixed, so a
//     megabyte without one costs no memory.
//   - Silence: each exchange is bounded by Timeout ("timeout"); a read that times out is
//     not an error to the port library and never spins.
//   - Unplugged: the port is closed and the same configured path reopened with jittered
//     exponential backoff up to BackoffMax ("disconnect", then a reconnect when it opens).
//   - A circuit of another type (an ORP circuit on a pH port): no readings are taken; it is
//     identified again at every interval, counted each time ("wrong_circuit"), and shown in
//     Status until a matching one answers.
//   - The sink cannot store a reading: it is logged and counted in Status (NotStored, not
//     in Health: the pipeline raises the store failure); polling goes on. A reading already
//     taken is stored even while Run is ending (package probestatus).
//
// Test and Calibrate let a technician exchange with the circuit through the running loop;
// both return the raw lines. Status is a snapshot for the admin API.
//
// # Goroutines
//
// Run blocks until its context ends. It starts one reader goroutine per open port and
// stops it before closing the port and before returning. Test, Calibrate and Status are
// safe for concurrent use; Test and Calibrate wait for the Run goroutine to serve them.
//
// # Caveats
//
// A reading is stamped with the time its value line arrived. A circuit left in continuous
// mode may answer R with a reading it had already started; the first reading after
// identification can therefore be up to a second old. Calibration does not check the
// buffer's value against the reading: that is the technician's judgement.
package serialprobe
