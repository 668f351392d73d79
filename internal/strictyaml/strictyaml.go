// Package strictyaml decodes the configuration files of every Pure Health program the same
// way: exactly one YAML document, and a key the target struct does not know is an error
// that names its line, so a typo never silently falls back to a default.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// ErrEmpty is returned for a document with nothing in it.
var ErrEmpty = errors.New("config is empty")

// Decode decodes the single YAML document in data into v, rejecting unknown keys.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return ErrEmpty
		}
		return fmt.Errorf("decode: %w", err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		// The second document does not even parse; its line is in err.
		return fmt.Errorf("a second YAML document is not allowed: %w", err)
	default:
		return fmt.Errorf("line %d: a second YAML document is not allowed", extra.Line)
	}
}
