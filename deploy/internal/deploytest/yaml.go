package deploytest

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Findings collects a lint's problems as "file:line: what".
type Findings struct {
	File string
	List []string
}

// Add records a problem at n's line (0 without a node).
func (p *Findings) Add(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.List = append(p.List, fmt.Sprintf("%s:%d: %s", p.File, line, fmt.Sprintf(format, args...)))
}

// Pairs returns the key and value nodes of a mapping node, or nil for anything else.
func Pairs(n *yaml.Node) [][2]*yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	out := make([][2]*yaml.Node, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	return out
}

// Items returns the entries of a sequence node; nil (absent) has none.
func Items(n *yaml.Node) []*yaml.Node {
	if n == nil {
		return nil
	}
	return n.Content
}

// Lookup returns the value of key in a mapping node, or nil.
func Lookup(n *yaml.Node, key string) *yaml.Node {
	for _, kv := range Pairs(n) {
		if kv[0].Value == key {
			return kv[1]
		}
	}
	return nil
}

// ParseYAML returns the top-level mapping of a YAML document, or nil after recording
// why there is none.
func ParseYAML(p *Findings, doc []byte) *yaml.Node {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		p.Add(nil, "not YAML: %v", err)
		return nil
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		p.Add(&root, "the top level must be a mapping")
		return nil
	}
	return root.Content[0]
}
