package strictyaml

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

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

type doc struct {
	Name    string         `yaml:"name"`
	Count   int            `yaml:"count"`
	Wait    Duration       `yaml:"wait"`
	List    []string       `yaml:"list"`
	Limits  map[string]int `yaml:"limits"`
	Inner   inner          `yaml:"inner"`
	Derived string         `yaml:"-"`
}

type inner struct {
	Ratio float64 `yaml:"ratio"`
}

func defaultDoc() doc {
	return doc{Name: "n", Count: 3, Wait: Duration(time.Minute), List: []string{"a", "b"},
		Limits: map[string]int{"x": 1, "y": 2}, Inner: inner{Ratio: 0.02}}
}

func (d *doc) Complete() { d.Derived = d.Name + "/derived" }

func (d *doc) Validate() error {
	if d.Count < 0 {
		return errors.New("count: must not be negative")
	}
	return nil
}

func TestParseOntoDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(*doc)
	}{
		{"nothing said keeps every default", "name: n\n", func(*doc) {}},
		{"an explicit zero replaces the default", "count: 0\ninner: {ratio: 0}\nwait: 0s\n", func(d *doc) {
			d.Count, d.Inner.Ratio, d.Wait = 0, 0, 0
		}},
		{"a key without a value keeps its default", "count:\ninner:\nname: ~\n", func(*doc) {}},
		{"a list replaces the default list", "list: [c]\n", func(d *doc) { d.List = []string{"c"} }},
		{"an empty list is empty", "list: []\n", func(d *doc) { d.List = []string{} }},
		{"a list without a value is empty", "list:\n", func(d *doc) { d.List = nil }},
		{"a map adds to the default map", "limits: {y: 0, z: 3}\n", func(d *doc) {
			d.Limits = map[string]int{"x": 1, "y": 0, "z": 3}
		}},
		{"an empty map keeps the default map", "limits: {}\n", func(*doc) {}},
		{"a map without a value keeps the default map", "limits:\n", func(*doc) {}},
		{"a null map keeps the default map", "limits: ~\n", func(*doc) {}},
		{"days", "wait: 2d\n", func(d *doc) { d.Wait = Duration(48 * time.Hour) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse[doc]([]byte(tt.yaml), defaultDoc)
			require.NoError(t, err)
			want := defaultDoc()
			tt.want(&want)
			want.Derived = want.Name + "/derived"
			assert.Equal(t, want, *got)
		})
	}

	again, err := Parse[doc]([]byte("limits: {z: 9}\n"), defaultDoc)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"x": 1, "y": 2, "z": 9}, again.Limits)
	assert.Equal(t, map[string]int{"x": 1, "y": 2}, defaultDoc().Limits, "the defaults are not shared between loads")
}

func TestParseErrors(t *testing.T) {
	_, err := Parse[doc]([]byte("count: -1\n"), defaultDoc)
	assert.EqualError(t, err, "count: must not be negative")
	_, err = Parse[doc]([]byte("name: a\nbogus: 1\n"), defaultDoc)
	assert.ErrorContains(t, err, "line 2: field bogus not found")
	_, err = Parse[doc]([]byte("# nothing\n"), defaultDoc)
	assert.ErrorIs(t, err, ErrEmpty)
	_, err = Parse[doc]([]byte("wait: 10\n"), defaultDoc)
	assert.ErrorContains(t, err, `line 1: "10" is not a duration`)
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte("count: 7\n"), 0o600))
	got, err := Load[doc](good, defaultDoc)
	require.NoError(t, err)
	assert.Equal(t, 7, got.Count)

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("count: -7\n"), 0o600))
	_, err = Load[doc](bad, defaultDoc)
	assert.EqualError(t, err, bad+": count: must not be negative")

	_, err = Load[doc](filepath.Join(dir, "absent.yaml"), defaultDoc)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.ErrorContains(t, err, "read config")
}

type sourced struct {
	Source `yaml:"-"`
	Name   string `yaml:"name"`
}

func (*sourced) Validate() error { return nil }

func TestLoadRecordsTheSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte("name: x\n"), 0o600))
	got, err := Load[sourced](path, func() sourced { return sourced{} })
	require.NoError(t, err)
	assert.Equal(t, sourced{Source: Source{Path: path}, Name: "x"}, *got)

	_, err = Parse[sourced]([]byte("name: x\nsource: {path: /etc/x}\n"), func() sourced { return sourced{} })
	assert.ErrorContains(t, err, "field source not found", "the path is not a key of the file")
}
