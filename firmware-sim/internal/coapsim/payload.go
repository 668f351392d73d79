package coapsim

import (
	"strconv"

	"github.com/purehealth/purehealth/firmware-sim/internal/probepayload"
)

// Format is how a resource represents its reading: FormatJSON (content-format 50) or
// FormatText (content-format 0).
type Format = probepayload.Format

// The formats.
const (
	FormatJSON = probepayload.FormatJSON
	FormatText = probepayload.FormatText
)

// ValueError is a configuration value out of its set.
type ValueError struct{ What, Value, Want string }

func (e *ValueError) Error() string {
	return "unknown " + e.What + " " + strconv.Quote(e.Value) + " (want " + e.Want + ")"
}
