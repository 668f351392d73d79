// Package strictyaml loads the configuration files of every Pure Health program the same
// way: exactly one YAML document, decoded onto the program's defaults, then validated.
//
// A key the target struct does not know is an error that names its line, so a typo never
// silently falls back to a default. A key the file leaves out, or writes without a value,
// keeps its default; any value written, zero included, replaces it. A list written
// without a value is empty. A map's entries are added to its defaults, so a map written
// empty or without a value keeps them (the two are one: both are written back out as {}).
//
// Duration and ByteSize are the scalar syntaxes the files of both programs share: Go
// durations or days ("90s", "36h", "90d"), and byte counts as plain integers or with a
// unit ("536870912", "512MiB").
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// ErrEmpty is returned for a document with nothing in it.
var ErrEmpty = errors.New("config is empty")

// Config is what Parse and Load need of a configuration type T, through its pointer.
type Config[T any] interface {
	*T
	// Validate reports every problem in the configuration, joined.
	Validate() error
}

// Completer is an optional method of a configuration: Complete fills in what depends on
// other keys (a path under data_dir) and stores canonical spellings, after decoding and
// before Validate.
type Completer interface {
	Complete()
}

// Source records the file a configuration was loaded from. Embedded in a configuration
// type, it gives it a Path that Load fills in.
type Source struct {
	Path string `yaml:"-"` // the file the configuration came from; "" when parsed from memory
}

func (s *Source) setPath(path string) { s.Path = path }

// Parse decodes data strictly onto defaults(), completes and validates it.
func Parse[T any, P Config[T]](data []byte, defaults func() T) (*T, error) {
	cfg := defaults()
	if err := Decode(data, &cfg); err != nil {
		return nil, err
	}
	def := defaults() // the maps of the first, decoded onto, hold the file's entries
	keepDefaultMaps(reflect.ValueOf(&cfg).Elem(), reflect.ValueOf(&def).Elem())
	if c, ok := any(P(&cfg)).(Completer); ok {
		c.Complete()
	}
	if err := P(&cfg).Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// keepDefaultMaps gives every map of v that a key without a value left nil its default from
// def: the YAML decoder empties a map for a null, where it adds the entries of {} (none) to
// the map already there.
func keepDefaultMaps(v, def reflect.Value) {
	switch v.Kind() {
	case reflect.Map:
		if v.IsNil() && !def.IsNil() {
			v.Set(def)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				keepDefaultMaps(v.Field(i), def.Field(i))
			}
		}
	}
}

// Load reads the file at path and parses it like Parse. Every error but a failed read
// starts with the file's name. A configuration that embeds Source gets path as its Path.
func Load[T any, P Config[T]](path string, defaults func() T) (*T, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse[T, P](data, defaults)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s, ok := any(P(cfg)).(interface{ setPath(string) }); ok {
		s.setPath(path)
	}
	return cfg, nil
}

// Decode decodes the single YAML document in data onto v, rejecting unknown keys. What v
// holds before is kept wherever the document says nothing.
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
