package oascheck

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// CloseObjects returns the OpenAPI document with `additionalProperties: false`
// added to every object schema that declares `properties` and says nothing about
// additional or unevaluated properties, so that tests fail on undocumented fields
// without the published contract forbidding additive changes.
//
// Left alone: schemas with additionalProperties / unevaluatedProperties already
// set (maps such as Error.fields, free-form objects such as AuditEvent.detail have
// no `properties`), and schemas combined with allOf/anyOf/oneOf (there
// additionalProperties:false would reject the other branches' fields; write
// unevaluatedProperties:false on the outer schema yourself instead).
func CloseObjects(doc []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return nil, fmt.Errorf("not a YAML document")
	}
	walkNonSchema(root.Content[0])
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// walkNonSchema visits OpenAPI objects (paths, operations, responses, media
// types, components...) and hands every schema position to closeSchema.
func walkNonSchema(n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			switch k {
			case "schema": // parameter, header, media type
				closeSchema(v)
			case "schemas": // components.schemas: name -> schema
				if v.Kind == yaml.MappingNode {
					for j := 1; j < len(v.Content); j += 2 {
						closeSchema(v.Content[j])
					}
				}
			case "example", "examples", "default", "enum", "const":
				// literal values, not OpenAPI objects
			default:
				walkNonSchema(v)
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			walkNonSchema(c)
		}
	}
}

func closeSchema(s *yaml.Node) {
	if s == nil || s.Kind != yaml.MappingNode || get(s, "$ref") != nil {
		return // boolean schema, or a reference: the target is closed where it is defined
	}
	if props := get(s, "properties"); props != nil && props.Kind == yaml.MappingNode {
		for j := 1; j < len(props.Content); j += 2 {
			closeSchema(props.Content[j])
		}
		if get(s, "additionalProperties") == nil && get(s, "unevaluatedProperties") == nil &&
			get(s, "allOf") == nil && get(s, "anyOf") == nil && get(s, "oneOf") == nil {
			s.Content = append(s.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "additionalProperties"},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"})
		}
	}
	for _, k := range []string{"items", "additionalProperties", "unevaluatedProperties", "not", "contains", "if", "then", "else", "propertyNames", "unevaluatedItems"} {
		closeSchema(get(s, k))
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf", "prefixItems"} {
		if seq := get(s, k); seq != nil && seq.Kind == yaml.SequenceNode {
			for _, c := range seq.Content {
				closeSchema(c)
			}
		}
	}
	for _, k := range []string{"$defs", "patternProperties", "dependentSchemas"} {
		if m := get(s, k); m != nil && m.Kind == yaml.MappingNode {
			for j := 1; j < len(m.Content); j += 2 {
				closeSchema(m.Content[j])
			}
		}
	}
}
