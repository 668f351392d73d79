// Package exitcode is how the Pure Health daemons tell a start-up failure (bad flags, a bad
// configuration, a busy port or database) from a failure while running, in their exit
// status, so a supervisor or a technician can tell "fix the config" from "it crashed".
package exitcode

import "errors"

// The exit codes.
const (
	OK      = 0
	Runtime = 1
	Startup = 2
)

// StartupError marks a failure before the program was up.
type StartupError struct{ Err error }

func (e *StartupError) Error() string { return e.Err.Error() }
func (e *StartupError) Unwrap() error { return e.Err }

// AtStartup marks err as a start-up failure; nil stays nil.
func AtStartup(err error) error {
	if err == nil {
		return nil
	}
	return &StartupError{Err: err}
}

// Of maps an error to the process exit code.
func Of(err error) int {
	if err == nil {
		return OK
	}
	if _, ok := errors.AsType[*StartupError](err); ok {
		return Startup
	}
	return Runtime
}
