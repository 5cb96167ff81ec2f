package registry

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestFilterKeyEscaping(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"plain", "$gte", "data.amount", "%", "%24", "a.$b%2E.", "%%$$..", ""} {
		e := escapeFilterKey(k)
		if strings.ContainsAny(e, "$.") {
			t.Errorf("escapeFilterKey(%q) = %q still holds $ or .", k, e)
		}
		if got := unescapeFilterKey(e); got != k {
			t.Errorf("unescape(escape(%q)) = %q", k, got)
		}
	}
}

func TestFilterRoundTrip(t *testing.T) {
	t.Parallel()
	s, err := structpb.NewStruct(map[string]any{
		"$and":   []any{map[string]any{"data.total": map[string]any{"$gt": 10.5}}, nil, true, "x", []any{}},
		"empty":  map[string]any{},
		"100%":   "%2E",
		"number": -3.0,
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := filterToBSON("filter.body", s)
	if err != nil {
		t.Fatal(err)
	}
	// It is a BSON document with escaped keys that a later evaluator can read.
	if _, err := raw.LookupErr("%24and"); err != nil {
		t.Fatalf("stored document %v lacks the escaped key: %v", raw, err)
	}
	if v := raw.Lookup("number"); v.Type != bson.TypeDouble {
		t.Fatalf("number stored as %v", v.Type)
	}
	back, err := filterFromBSON(raw)
	if err != nil || !proto.Equal(back, s) {
		t.Fatalf("round trip = %v, %v; want %v", back, err, s)
	}
	if raw, err := filterToBSON("f", nil); raw != nil || err != nil {
		t.Fatalf("nil filter = %v, %v", raw, err)
	}
}

func TestFilterDepth(t *testing.T) {
	t.Parallel()
	nest := func(levels int, list bool) *structpb.Struct {
		v := structpb.NewStringValue("leaf")
		for i := 1; i < levels; i++ {
			if list && i%2 == 0 {
				v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
			} else {
				v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"k": v}})
			}
		}
		return &structpb.Struct{Fields: map[string]*structpb.Value{"k": v}}
	}
	for _, list := range []bool{false, true} {
		if _, err := filterToBSON("filter.body", nest(10, list)); err != nil {
			t.Errorf("10 levels (lists %v) refused: %v", list, err)
		}
		if _, err := filterToBSON("filter.body", nest(11, list)); err == nil || !strings.Contains(err.Error(), "filter.body: is nested deeper than 10 levels") {
			t.Errorf("11 levels (lists %v): %v", list, err)
		}
	}
	nul := &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStringValue("x\x00")}}
	if _, err := filterToBSON("filter.headers", nul); err == nil || !strings.Contains(err.Error(), "filter.headers") {
		t.Errorf("NUL in a string: %v", err)
	}
}
