package filter

import (
	"fmt"
	"strings"
)

// Compiled operands are normalised to nil, bool, string, decimal, []any and
// map[string]any; payload values are whatever the caller decoded, numbers
// read by toDecimal.

// equal reports whether the payload value v equals the compiled operand op:
// deeply for arrays and objects, by value for numbers, and never across kinds.
func equal(op, v any) bool {
	switch o := op.(type) {
	case nil:
		return v == nil
	case bool:
		b, ok := v.(bool)
		return ok && b == o
	case string:
		s, ok := v.(string)
		return ok && s == o
	case decimal:
		d, ok := toDecimal(v)
		return ok && d.cmp(o) == 0
	case []any:
		return equalArray(o, v)
	case map[string]any:
		return equalObject(o, v)
	}
	return false
}

// equalArray reports whether v is an array of the same length as o whose
// elements equal o's in order.
func equalArray(o []any, v any) bool {
	a, ok := v.([]any)
	if !ok || len(a) != len(o) {
		return false
	}
	for i := range o {
		if !equal(o[i], a[i]) {
			return false
		}
	}
	return true
}

// equalObject reports whether v is an object with the same keys as o whose
// values equal o's.
func equalObject(o map[string]any, v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != len(o) {
		return false
	}
	for k, ov := range o {
		mv, ok := m[k]
		if !ok || !equal(ov, mv) {
			return false
		}
	}
	return true
}

// order compares the payload value v with the compiled operand op, a string
// or a decimal. ok is false when they are not of the same kind.
func order(v, op any) (c int, ok bool) {
	switch o := op.(type) {
	case string:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(s, o), true
	case decimal:
		d, ok := toDecimal(v)
		if !ok {
			return 0, false
		}
		return d.cmp(o), true
	}
	return 0, false
}

// kindOf names v's JSON kind for error messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	if isNumber(v) {
		return "number"
	}
	return fmt.Sprintf("unsupported type %T", v)
}
