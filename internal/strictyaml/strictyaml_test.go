package strictyaml

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type target struct {
	Name  string `yaml:"name"`
	Inner struct {
		Port int `yaml:"port"`
	} `yaml:"inner"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"ok", "name: a\ninner: {port: 1}\n", ""},
		{"leading and trailing markers", "---\nname: a\n...\n", ""},
		{"unknown key names its line", "name: a\ninner:\n  prot: 1\n", "line 3: field prot not found"},
		{"empty", "", "config is empty"},
		{"comments only", "# nothing\n", "config is empty"},
		{"second document", "name: a\n---\nname: b\n", "line 2: a second YAML document is not allowed"},
		{"broken second document", "name: a\n---\n[\n", "a second YAML document is not allowed"},
		{"type error", "inner: {port: many}\n", "decode: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v target
			err := Decode([]byte(tt.doc), &v)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, "a", v.Name)
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
	assert.ErrorIs(t, Decode(nil, &target{}), ErrEmpty)
}
