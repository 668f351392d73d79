package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Changed lists the keys whose values differ between two configurations, as dotted paths
// in the file's own names ("mqtt.listen", "alerts.hooks"), sorted: mappings are compared
// key by key, anything else (a list, a value) as a whole. It names keys, never values, so
// that what it returns can be logged even when a token changed.
func Changed(old, cur *Config) ([]string, error) {
	a, err := asTree(old)
	if err != nil {
		return nil, err
	}
	b, err := asTree(cur)
	if err != nil {
		return nil, err
	}
	var out []string
	diffTree("", a, b, &out)
	slices.Sort(out)
	return out, nil
}

// asTree is c as the generic tree of its YAML form.
func asTree(c *Config) (map[string]any, error) {
	raw, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("compare configurations: %w", err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		return nil, fmt.Errorf("compare configurations: %w", err)
	}
	return tree, nil
}

func diffTree(prefix string, a, b map[string]any, out *[]string) {
	keys := slices.Sorted(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		am, aIsMap := a[k].(map[string]any)
		bm, bIsMap := b[k].(map[string]any)
		switch {
		case aIsMap && bIsMap:
			diffTree(path, am, bm, out)
		case !reflect.DeepEqual(a[k], b[k]):
			*out = append(*out, path)
		}
	}
}
