// Package scenario describes a whole station's simulated probes in one YAML file and runs
// them in one process: EZO circuits on pseudo-terminals (package ezo), CoAP sondes
// (coapsim), HTTP sensors (httpsim) and MQTT publishers (mqttsim), the way a station's
// instruments surround its gateway. `ph-sim station --scenario FILE` is its command.
//
// A scenario file looks like this:
//
//	station: MH-KOLHAPUR-001   # the river model, and the MQTT topics
//	seed: 1                    # same seed, same values
//	speed: 1                   # divides the serial circuits' delays (tests: 20)
//	plumes:                    # discharges upstream that pass the station (optional)
//	  - {source_km: 0, start: 2h, duration: 4h, severity: 0.8, speed: 0.5}
//	probes:
//	  - {name: ph-1, kind: serial, param: ph, link: ./tmp/demo/tty-ph, faults: [noise]}
//	  - {name: ph-2, kind: mqtt, broker: "127.0.0.1:18834", params: [ph], faults: [drift], fault_at: 6h}
//	  - {name: sonde-1, kind: coap, listen: "127.0.0.1:15683", params: [do, temp], interval: 5s}
//	  - {name: turb-1, kind: http, listen: "127.0.0.1:18090", params: [turbidity]}
//	  - {name: lab-1, kind: mqtt, broker: "127.0.0.1:18834", params: [bod, fc], rate: 0.1, qos: 1}
//
// Each kind takes its own keys (see Probe); a key of another kind, an unknown key, a
// duplicate key or a value of the wrong type is an error naming its line, and Validate
// reports every other problem at once, each with the line and the probe it concerns. Load
// (or Parse) is the one path from a file to a checked Scenario.
//
// Truth says what really happens at the station over a period — the pollution events that
// reach it (its own discharges, those of the modelled stations upstream on its river, the
// scenario's plumes) and when each probe's fault sets in — and Record writes down what
// its probes would have reported over that period, so detectors can be scored against
// the truth without waiting for it in real time (`ph-sim history`).
//
// A Station runs a checked Scenario: NewStation builds every simulator and starts nothing;
// Run binds every listener first (so a port in use stops the station before anything
// runs), announces each endpoint as it becomes reachable, and serves until its context
// ends. It owns one goroutine per probe (plus those the simulators own), and returns after
// all of them have stopped.
//
// # Caveats
//
// Serial probes need Linux pseudo-terminals. Every EZO circuit of one parameter reads the
// same river with the same probe noise: the circuits differ by their faults, not their
// values. An MQTT probe whose broker cannot be reached yet keeps trying (backing off up
// to 30 s), as a field device does, instead of stopping the station.
package scenario
