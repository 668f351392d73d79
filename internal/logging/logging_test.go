package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	assert.NoError(t, Default().Validate())
	for _, level := range []string{"debug", "info", "warn", "error"} {
		assert.NoError(t, Config{Level: level, Format: "json"}.Validate())
	}
	err := Config{Level: "verbose", Format: "xml"}.Validate()
	require.Error(t, err)
	assert.Equal(t, "log.level: \"verbose\" must be debug, info, warn or error\nlog.format: \"xml\" must be text or json", err.Error())
	assert.Error(t, Config{Level: "INFO", Format: "text"}.Validate(), "levels are lower-case, as documented")
}

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, Config{Level: "warn", Format: "json"})
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec), buf.String())
	assert.Equal(t, "shown", rec["msg"])

	buf.Reset()
	log = New(&buf, Default())
	log.Debug("hidden")
	log.Info("shown")
	assert.True(t, strings.HasPrefix(buf.String(), "time="), "text format: %s", buf.String())
	assert.Equal(t, 1, strings.Count(buf.String(), "\n"))
}
