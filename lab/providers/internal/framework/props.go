// Package framework is the small gRPC plumbing shared by the lab stand-ins for the tls, random and
// command provider plugins: property specs, Check defaults, a generic Diff, secret handling and a
// minimal schema. Each provider package only declares its resources and implements Create/Update/….
package framework

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Prop describes one top-level property of a resource.
type Prop struct {
	Name     string
	Type     string // string, integer, number, boolean, array, object, asset
	Items    string // element type of an array: string unless set, "any" for anything
	In       bool   // an input (every input is also an output, as the real providers store them)
	Required bool   // a required input
	Secret   bool   // the output is always a secret
	Replace  bool   // a change to this input replaces the resource
	PEM      bool   // compare as PEM text (surrounding whitespace and line endings ignored)
	Default  any    // applied by Check when the input is absent
	Desc     string
}

// Unwrap returns v without any secret wrappers (recursively for arrays and objects).
func Unwrap(v resource.PropertyValue) resource.PropertyValue {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	switch {
	case v.IsArray():
		arr := v.ArrayValue()
		out := make([]resource.PropertyValue, len(arr))
		for i, e := range arr {
			out[i] = Unwrap(e)
		}
		return resource.NewArrayProperty(out)
	case v.IsObject():
		obj := v.ObjectValue()
		out := resource.PropertyMap{}
		for k, e := range obj {
			out[k] = Unwrap(e)
		}
		return resource.NewObjectProperty(out)
	}
	return v
}

// ContainsUnknowns reports whether v (or anything inside it) is unknown.
func ContainsUnknowns(v resource.PropertyValue) bool {
	v = shallow(v)
	switch {
	case v.IsComputed(), v.IsOutput() && !v.OutputValue().Known:
		return true
	case v.IsArray():
		for _, e := range v.ArrayValue() {
			if ContainsUnknowns(e) {
				return true
			}
		}
	case v.IsObject():
		for _, e := range v.ObjectValue() {
			if ContainsUnknowns(e) {
				return true
			}
		}
	}
	return false
}

func shallow(v resource.PropertyValue) resource.PropertyValue {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	return v
}

// Get returns the property without secret wrappers and whether it is present and not null.
func Get(m resource.PropertyMap, key string) (resource.PropertyValue, bool) {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return v, false
	}
	v = shallow(v)
	if v.IsNull() {
		return v, false
	}
	return v, true
}

// Known reports whether the property is present and fully known.
func Known(m resource.PropertyMap, key string) bool {
	v, ok := Get(m, key)
	return ok && !ContainsUnknowns(v)
}

// IsUnknown reports whether the property is present and (partly) unknown.
func IsUnknown(m resource.PropertyMap, key string) bool {
	v, ok := Get(m, key)
	return ok && ContainsUnknowns(v)
}

// Str returns a string property ("" when absent, unknown or not a string).
func Str(m resource.PropertyMap, key string) string {
	v, ok := Get(m, key)
	if ok && v.IsString() {
		return v.StringValue()
	}
	return ""
}

// StrPtr returns a string property or nil when absent.
func StrPtr(m resource.PropertyMap, key string) *string {
	v, ok := Get(m, key)
	if ok && v.IsString() {
		s := v.StringValue()
		return &s
	}
	return nil
}

// Bool returns a boolean property, def when absent.
func Bool(m resource.PropertyMap, key string, def bool) bool {
	v, ok := Get(m, key)
	if ok && v.IsBool() {
		return v.BoolValue()
	}
	return def
}

// Int returns a numeric property as an int, def when absent.
func Int(m resource.PropertyMap, key string, def int) int {
	v, ok := Get(m, key)
	if ok && v.IsNumber() {
		return int(v.NumberValue())
	}
	return def
}

// Strings returns an array of strings (secret elements unwrapped; non-strings skipped).
func Strings(m resource.PropertyMap, key string) []string {
	v, ok := Get(m, key)
	if !ok || !v.IsArray() {
		return nil
	}
	var out []string
	for _, e := range v.ArrayValue() {
		e = shallow(e)
		if e.IsString() {
			out = append(out, e.StringValue())
		}
	}
	return out
}

// Object returns a nested object property (secret wrapper removed at the top level only).
func Object(m resource.PropertyMap, key string) resource.PropertyMap {
	v, ok := Get(m, key)
	if ok && v.IsObject() {
		return v.ObjectValue()
	}
	return nil
}

// StringMap returns an object of strings as a Go map.
func StringMap(m resource.PropertyMap, key string) map[string]string {
	obj := Object(m, key)
	if obj == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range obj {
		v = shallow(v)
		if v.IsString() {
			out[string(k)] = v.StringValue()
		}
	}
	return out
}

// ToValue converts a Go default value to a PropertyValue.
func ToValue(v any) resource.PropertyValue {
	switch x := v.(type) {
	case resource.PropertyValue:
		return x
	case string:
		return resource.NewStringProperty(x)
	case bool:
		return resource.NewBoolProperty(x)
	case int:
		return resource.NewNumberProperty(float64(x))
	case float64:
		return resource.NewNumberProperty(x)
	}
	panic(fmt.Sprintf("unsupported default %T", v))
}

func normPEM(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
}

// Equal compares two property values the way the diff needs: secrets ignored, unknowns never equal,
// null equal to absent, assets by hash (or by their path/text when a hash is missing).
func Equal(a, b resource.PropertyValue, pem bool) bool {
	a, b = shallow(a), shallow(b)
	if ContainsUnknowns(a) || ContainsUnknowns(b) {
		return false
	}
	if a.IsNull() || b.IsNull() {
		return a.IsNull() && b.IsNull()
	}
	switch {
	case a.IsString() && b.IsString():
		if pem {
			return normPEM(a.StringValue()) == normPEM(b.StringValue())
		}
		return a.StringValue() == b.StringValue()
	case a.IsNumber() && b.IsNumber():
		return a.NumberValue() == b.NumberValue()
	case a.IsBool() && b.IsBool():
		return a.BoolValue() == b.BoolValue()
	case a.IsArray() && b.IsArray():
		x, y := a.ArrayValue(), b.ArrayValue()
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i], pem) {
				return false
			}
		}
		return true
	case a.IsObject() && b.IsObject():
		x, y := a.ObjectValue(), b.ObjectValue()
		keys := map[resource.PropertyKey]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		for k := range keys {
			if !Equal(x[k], y[k], pem) {
				return false
			}
		}
		return true
	case a.IsAsset() && b.IsAsset():
		x, y := a.AssetValue(), b.AssetValue()
		if x.Hash != "" && y.Hash != "" {
			return x.Hash == y.Hash
		}
		return x.Path == y.Path && x.Text == y.Text && x.URI == y.URI
	case a.IsArchive() && b.IsArchive():
		x, y := a.ArchiveValue(), b.ArchiveValue()
		if x.Hash != "" && y.Hash != "" {
			return x.Hash == y.Hash
		}
		return x.Path == y.Path && x.URI == y.URI
	}
	return a.DeepEquals(b)
}

// Copy returns a shallow copy of m.
func Copy(m resource.PropertyMap) resource.PropertyMap {
	out := resource.PropertyMap{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
