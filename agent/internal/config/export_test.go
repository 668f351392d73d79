package config

import "testing"

// SetIntSize makes Validate judge the configuration as on a system whose int has bits
// bits, until the test ends.
func SetIntSize(t *testing.T, bits int) {
	old := intSize
	intSize = bits
	t.Cleanup(func() { intSize = old })
}
