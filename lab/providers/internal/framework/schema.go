package framework

import "strings"

// schema returns a minimal but valid Pulumi package schema listing the implemented resources.
// The npm SDKs never ask for it; it is there for `pulumi package get-schema` and similar tools.
func (s *Server) schema() map[string]any {
	resources := map[string]any{}
	for _, tok := range sortedKeys(s.Resources) {
		r := s.Resources[tok]
		props, inputs := map[string]any{}, map[string]any{}
		var required, requiredInputs []string
		for _, p := range r.Props {
			spec := map[string]any{}
			switch p.Type {
			case "array":
				items := p.Items
				if items == "" {
					items = "string"
				}
				spec["type"] = "array"
				if items == "any" {
					spec["items"] = map[string]any{"$ref": "pulumi.json#/Any"}
				} else {
					spec["items"] = map[string]any{"type": items}
				}
			case "object":
				spec["$ref"] = "pulumi.json#/Any"
			case "asset":
				spec["$ref"] = "pulumi.json#/Asset"
			default:
				spec["type"] = p.Type
			}
			if p.Desc != "" {
				spec["description"] = p.Desc
			}
			if p.Secret {
				spec["secret"] = true
			}
			out := map[string]any{}
			for k, v := range spec {
				out[k] = v
			}
			props[p.Name] = out
			if !p.In || p.Required || p.Default != nil {
				required = append(required, p.Name)
			}
			if p.In {
				in := map[string]any{}
				for k, v := range spec {
					in[k] = v
				}
				if p.Default != nil {
					in["default"] = p.Default
				}
				if p.Replace {
					in["replaceOnChanges"] = true
				}
				inputs[p.Name] = in
				if p.Required {
					requiredInputs = append(requiredInputs, p.Name)
				}
			}
		}
		res := map[string]any{
			"description":     r.Desc,
			"properties":      props,
			"inputProperties": inputs,
		}
		if len(required) > 0 {
			res["required"] = required
		}
		if len(requiredInputs) > 0 {
			res["requiredInputs"] = requiredInputs
		}
		resources[tok] = res
	}
	// tls and random tokens name their file ("index/privateKey"), as the bridged schemas do.
	moduleFormat := "(.*)"
	for tok := range s.Resources {
		if strings.Contains(tok, "/") {
			moduleFormat = "(.*)(?:/[^/]*)"
		}
	}
	return map[string]any{
		"meta":        map[string]any{"moduleFormat": moduleFormat},
		"name":        s.Name,
		"version":     s.Version,
		"description": "Lab-only stand-in for the " + s.Name + " provider (kubeha lab/providers); implements only what kubeha uses.",
		"resources":   resources,
	}
}
