package filter_test

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/hookmesh/hookmesh/internal/filter"
)

// addSeeds adds the filters and payloads of the table tests to f's corpus.
func addSeeds(f *testing.F) {
	for _, tc := range matchCases {
		f.Add([]byte(tc.filter), []byte(tc.payload))
	}
	for _, tc := range headerCases {
		h, err := json.Marshal(tc.headers)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(tc.filter), h)
	}
	for _, tc := range compileErrorCases {
		if tc.filter != "" && len(tc.filter) < 200 {
			f.Add([]byte(tc.filter), []byte(`{"a":1}`))
		}
	}
}

// maxFuzzInput bounds each fuzz input. Filters and payloads far smaller
// reach every branch, and a large input that finds new coverage stalls the
// fuzzer for up to a minute while it is minimized
// (https://go.dev/issue/48820).
const maxFuzzInput = 2 << 10

// tooLarge reports whether a fuzz input is past maxFuzzInput.
func tooLarge(inputs ...[]byte) bool {
	for _, in := range inputs {
		if len(in) > maxFuzzInput {
			return true
		}
	}
	return false
}

// headersOf turns a payload into headers: the members of an object, with
// values that are not strings written as JSON.
func headersOf(v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	h := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			h[k] = s
			continue
		}
		b, _ := json.Marshal(v)
		h[k] = string(b)
	}
	return h
}

// FuzzCompileMatch checks that whatever the filter and payload, Compile
// either compiles or returns an *Error, and matching never panics.
func FuzzCompileMatch(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, filterJSON, payloadJSON []byte) {
		if tooLarge(filterJSON, payloadJSON) {
			return
		}
		v, err := filter.DecodeJSON(filterJSON)
		if err != nil {
			return
		}
		doc, ok := v.(map[string]any)
		if !ok {
			return
		}
		flt, err := filter.Compile(doc, filter.Options{})
		if err != nil {
			var fe *filter.Error
			if !errors.As(err, &fe) || fe.Msg == "" {
				t.Fatalf("Compile error %#v is not a *filter.Error with a message", err)
			}
			return
		}
		payload, err := filter.DecodeJSON(payloadJSON)
		if err != nil {
			payload = string(payloadJSON)
		}
		flt.Match(payload)
		flt.MatchHeaders(headersOf(payload))
		var floats any
		if json.Unmarshal(payloadJSON, &floats) == nil {
			flt.Match(floats)
		}
		flt.IsEmpty()
	})
}

// FuzzMatchDeterministic checks properties of Match that hold whatever the
// filter and payload: the same answer twice; {"$or":[f]}, {"$and":[f,f]}
// and {"$or":[f, <never true>]} answer as f; {k:{"$neq":v}} and
// {k:{"$nin":[v]}} answer the opposite of {k:v}, and {k:{"$in":[v]}} as
// {k:v}; header names match in any case; and small integers match the same
// whether decoded as json.Number or float64.
func FuzzMatchDeterministic(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, filterJSON, payloadJSON []byte) {
		if tooLarge(filterJSON, payloadJSON) {
			return
		}
		v, err := filter.DecodeJSON(filterJSON)
		if err != nil {
			return
		}
		doc, ok := v.(map[string]any)
		if !ok {
			return
		}
		flt, err := filter.Compile(doc, filter.Options{})
		if err != nil {
			return
		}
		payload, err := filter.DecodeJSON(payloadJSON)
		if err != nil {
			return
		}
		want := flt.Match(payload)
		if flt.Match(payload) != want {
			t.Fatalf("Match gave two answers for filter %s on %s", filterJSON, payloadJSON)
		}

		// Wrapping adds two levels and a few nodes to what compiled.
		roomy := filter.Options{MaxDepth: filter.DefaultMaxDepth + 2, MaxNodes: 2*filter.DefaultMaxNodes + 10}
		never := map[string]any{"\x00never": map[string]any{"$exist": true}}
		if !compileWith(t, never, roomy).Match(payload) {
			for name, w := range map[string]map[string]any{
				"$or[f]":        {"$or": []any{doc}},
				"$and[f,f]":     {"$and": []any{doc, doc}},
				"$or[f, never]": {"$or": []any{doc, never}},
			} {
				if got := compileWith(t, w, roomy).Match(payload); got != want {
					t.Errorf("%s = %v, f = %v, for filter %s on %s", name, got, want, filterJSON, payloadJSON)
				}
			}
		}

		// Negations of the shorthand $eq of each top-level field.
		for k, v := range doc {
			if strings.HasPrefix(k, "$") {
				continue
			}
			if m, ok := v.(map[string]any); ok && len(m) > 0 {
				continue
			}
			eq := compileWith(t, map[string]any{k: v}, roomy).Match(payload)
			neq := compileWith(t, map[string]any{k: map[string]any{"$neq": v}}, roomy).Match(payload)
			in := compileWith(t, map[string]any{k: map[string]any{"$in": []any{v}}}, roomy).Match(payload)
			nin := compileWith(t, map[string]any{k: map[string]any{"$nin": []any{v}}}, roomy).Match(payload)
			if neq == eq || in != eq || nin == eq {
				t.Errorf("key %q: eq %v, neq %v, in %v, nin %v on %s", k, eq, neq, in, nin, payloadJSON)
			}
		}

		// Header names in any case.
		if h := headersOf(payload); h != nil {
			upper := make(map[string]string, len(h))
			for k, v := range h {
				upper[strings.ToUpper(k)] = v
			}
			if len(upper) == len(h) && !hasNonASCII(maps.Keys(h)) && flt.MatchHeaders(h) != flt.MatchHeaders(upper) {
				t.Errorf("MatchHeaders differs with upper-cased names for filter %s on %s", filterJSON, payloadJSON)
			}
		}

		// float64 payloads, when every number is a small integer.
		if smallIntegers(payload) {
			var floats any
			if err := json.Unmarshal(payloadJSON, &floats); err == nil && flt.Match(floats) != want {
				t.Errorf("Match differs on float64 numbers for filter %s on %s", filterJSON, payloadJSON)
			}
		}
	})
}

func compileWith(t *testing.T, doc map[string]any, opts filter.Options) *filter.Filter {
	t.Helper()
	f, err := filter.Compile(doc, opts)
	if err != nil {
		t.Fatalf("Compile(%v): %v", doc, err)
	}
	return f
}

func hasNonASCII(keys func(func(string) bool)) bool {
	for k := range keys {
		for i := range len(k) {
			if k[i] >= 0x80 {
				return true
			}
		}
	}
	return false
}

// smallIntegers reports whether every number in v is an integer that a
// float64 holds exactly.
func smallIntegers(v any) bool {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		return err == nil && -1<<53 <= n && n <= 1<<53
	case []any:
		for _, e := range x {
			if !smallIntegers(e) {
				return false
			}
		}
	case map[string]any:
		for _, e := range x {
			if !smallIntegers(e) {
				return false
			}
		}
	}
	return true
}
