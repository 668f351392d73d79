// Package testproc runs this module's programs as real processes for tests: it builds a
// command once per test binary, starts it, reads what it prints, stops it and checks its
// log.
//
//   - Builder compiles Go commands into a temporary directory, each at most once, with the
//     race detector when asked (Race says whether the test binary has it). Main, called
//     from TestMain, removes them after the tests.
//   - Start runs a program whose standard output announces it (a simulator printing the
//     addresses it serves); Line waits for each line. Its standard error goes to the test
//     log.
//   - NewDaemon prepares a service (ph-agent run, ph-cloud serve) that a test starts, kills
//     and starts again as often as it likes, with its output over all its lives in one log
//     file that is shown when the test fails and checked for race reports and panics.
//   - Run and Exec run one-shot commands (CLI calls) and return what they printed and how
//     they exited.
//   - FreeAddr picks a loopback port for a process to listen on.
//   - StartLogged and StartAnnounced start a program whose output goes to a log file, as a
//     Logged that Stop ends with a signal and a grace period. They, FreePort, Tail and
//     DieWithParent need no test: the benchmark driver starts the programs it measures
//     with them.
//
// Every process is stopped at the end of the test that started it, and every goroutine
// the package starts has ended by then; Main checks with goleak that none is left. Every
// wait is bounded by a timeout that only turns a hang into a failure: nothing here
// measures speed.
//
// Processes get the environment of Env: with the race detector, a program waits a second
// at exit for late reports by default, which Env turns off because the tests read the
// reports from the log instead.
//
// On Linux a process is also killed should the test binary die without running its
// cleanups.
package testproc
