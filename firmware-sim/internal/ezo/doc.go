// Package ezo emulates an Atlas Scientific EZO circuit (pH, DO, EC or RTD) speaking its
// UART text protocol on a pseudo-terminal, so the agent's serial probe driver can be tested,
// benchmarked and demonstrated without hardware.
//
// A Device is the circuit's protocol state machine: it answers one command line at a time
// with the bytes the circuit would send and how long it would think first (Handle), and
// emits continuous-mode readings (Tick). Values come from a device.Probe of the station's
// river model, so they are reproducible from the station, the seed and the model time.
// Faults of the probe (package device: noise, drift, stuck, dropout, garbage, spike) and of
// the circuit and its link (Fault: *ER replies, over- and under-voltage, resets, falling
// asleep, a megabyte without a carriage return, silence, unplugging) are injected on demand.
//
// An Emulator puts a Device on a pseudo-terminal: it prints nothing itself, reports each
// device path through Options.OnAttach, keeps an optional symlink pointing at the current
// path (a stable name such as /dev/serial/by-id/... has on a gateway), and on an unplug
// closes the terminal, waits, and comes back on a new one behind the same link.
//
// The frames are written here from the protocol description (science §5 and the EZO data
// sheets), byte by byte, and never with the agent's parser: a bug shared by an encoder and a
// decoder could not be caught.
//
// # Caveats
//
// The emulation covers the commands a station uses (R, i, Status, C, T, Cal, *OK, O, S,
// Sleep, L, Find, Name, Factory). Everything else is answered with *ER, as a real circuit
// answers a command it does not know. The pseudo-terminal ignores the baud rate. Linux only.
package ezo
