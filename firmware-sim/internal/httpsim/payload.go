package httpsim

import "github.com/purehealth/purehealth/firmware-sim/internal/probepayload"

// Format is how a sensor represents its reading: FormatJSON (application/json) or
// FormatText (text/plain).
type Format = probepayload.Format

// The formats.
const (
	FormatJSON = probepayload.FormatJSON
	FormatText = probepayload.FormatText
)

// contentType is the media type of a format.
func contentType(f Format) string {
	if f == FormatText {
		return "text/plain; charset=utf-8"
	}
	return "application/json"
}
