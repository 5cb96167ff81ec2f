package filter_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hookmesh/hookmesh/internal/filter"
)

// compileErrorCase is a filter Compile must reject, where and why.
type compileErrorCase struct {
	name     string
	filter   string         // JSON, or
	doc      map[string]any // a document built in Go
	opts     filter.Options
	wantPath string
	wantMsg  string // a part of the message
}

// deepJSON is a document of n nested objects: {"a":{"a":...{"a":1}}}.
func deepJSON(n int) string {
	return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
}

// longIn is {"a":{"$in":[0,1,...,n-1]}}.
func longIn(n int) string {
	var b strings.Builder
	b.WriteString(`{"a":{"$in":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("0")
	}
	b.WriteString("]}}")
	return b.String()
}

var compileErrorCases = []compileErrorCase{
	// Operators.
	{name: "unknown operator in a field in $or", filter: `{"$or":[{"a":1},{"status":{"$foo":1}}]}`,
		wantPath: "$or[1].status.$foo", wantMsg: `unknown operator "$foo" (want $eq $neq $gt $gte $lt $lte $in $nin $exist $regex $or $and)`},
	{name: "unknown operator at the top", filter: `{"$where":"1"}`, wantPath: "$where", wantMsg: `unknown operator "$where"`},
	{name: "MongoDB's $ne", filter: `{"a":{"$ne":1}}`, wantPath: "a.$ne", wantMsg: "did you mean $neq?"},
	{name: "MongoDB's $exists", filter: `{"a":{"$exists":true}}`, wantPath: "a.$exists", wantMsg: "did you mean $exist?"},
	{name: "value operator at the top", filter: `{"$eq":1}`, wantPath: "$eq", wantMsg: "must apply to a field"},
	{name: "value operator at the top of $or", filter: `{"$or":[{"$gt":1}]}`, wantPath: "$or[0].$gt", wantMsg: "must apply to a field"},
	{name: "operators mixed with fields", filter: `{"customer":{"tier":"gold","$gte":1}}`, wantPath: "customer", wantMsg: `mixes the operator $gte with the field "tier"`},
	{name: "operators mixed with fields, deeper", filter: `{"a":{"b":{"c":1,"$in":[1]}}}`, wantPath: "a.b", wantMsg: "mixes"},
	{name: "operators mixed with fields at the top", filter: `{"a":1,"$exist":true}`, wantPath: "", wantMsg: "mixes the operator $exist"},

	// Operands.
	{name: "gte array", filter: `{"amount":{"$gte":[1]}}`, wantPath: "amount.$gte", wantMsg: "operand must be a number or a string, got array"},
	{name: "gt object", filter: `{"amount":{"$gt":{"a":1}}}`, wantPath: "amount.$gt", wantMsg: "got object"},
	{name: "lt bool", filter: `{"amount":{"$lt":true}}`, wantPath: "amount.$lt", wantMsg: "got boolean"},
	{name: "lte null", filter: `{"amount":{"$lte":null}}`, wantPath: "amount.$lte", wantMsg: "got null"},
	{name: "in string", filter: `{"a":{"$in":"x"}}`, wantPath: "a.$in", wantMsg: "operand must be an array, got string"},
	{name: "nin null", filter: `{"a":{"$nin":null}}`, wantPath: "a.$nin", wantMsg: "operand must be an array, got null"},
	{name: "exist string", filter: `{"a":{"$exist":"yes"}}`, wantPath: "a.$exist", wantMsg: "operand must be a boolean, got string"},
	{name: "exist number", filter: `{"a":{"$exist":1}}`, wantPath: "a.$exist", wantMsg: "got number"},
	{name: "regex number", filter: `{"a":{"$regex":5}}`, wantPath: "a.$regex", wantMsg: "operand must be a string, got number"},
	{name: "regex invalid", filter: `{"name":{"$regex":"("}}`, wantPath: "name.$regex", wantMsg: "invalid regular expression: missing closing ): `(`"},
	{name: "regex Perl lookahead", filter: `{"name":{"$regex":"a(?=b)"}}`, wantPath: "name.$regex", wantMsg: "invalid regular expression: invalid or unsupported Perl syntax"},
	{name: "regex too long", filter: `{"name":{"$regex":"abcde"}}`, opts: filter.Options{MaxRegexLen: 4},
		wantPath: "name.$regex", wantMsg: "regular expression is 5 bytes long, over the limit of 4"},
	{name: "regex too long by default", filter: `{"name":{"$regex":"` + strings.Repeat("a", 1025) + `"}}`, wantPath: "name.$regex", wantMsg: "over the limit of 1024"},

	// $or and $and.
	{name: "or not an array", filter: `{"$or":{"a":1}}`, wantPath: "$or", wantMsg: "operand must be a non-empty array of filter documents, got object"},
	{name: "or empty", filter: `{"$or":[]}`, wantPath: "$or", wantMsg: "got an empty array"},
	{name: "and empty in a field", filter: `{"a":{"$and":[]}}`, wantPath: "a.$and", wantMsg: "got an empty array"},
	{name: "or element a string", filter: `{"$or":[{"a":1},"b"]}`, wantPath: "$or[1]", wantMsg: "must be a filter document (an object), got string"},
	{name: "and element null", filter: `{"$and":[null]}`, wantPath: "$and[0]", wantMsg: "got null"},
	{name: "or element an array", filter: `{"x":{"$or":[[{"a":1}]]}}`, wantPath: "x.$or[0]", wantMsg: "got array"},
	{name: "error inside nested or", filter: `{"$and":[{"a":1},{"$or":[{"b":{"$in":1}}]}]}`, wantPath: "$and[1].$or[0].b.$in", wantMsg: "must be an array"},

	// Paths.
	{name: "empty segment", filter: `{"a..b":1}`, wantPath: "a..b", wantMsg: `field path "a..b" has an empty segment`},
	{name: "leading dot", filter: `{".a":1}`, wantPath: ".a", wantMsg: "empty segment"},
	{name: "trailing dot", filter: `{"a.":1}`, wantPath: "a.", wantMsg: "empty segment"},
	{name: "only a dot", filter: `{".":1}`, wantPath: ".", wantMsg: "empty segment"},
	{name: "empty segment nested", filter: `{"x":{"a..b":1}}`, wantPath: "x.a..b", wantMsg: "empty segment"},
	{name: "empty segment in or", filter: `{"$or":[{"a.":1}]}`, wantPath: "$or[0].a.", wantMsg: "empty segment"},
	{name: "empty field name", filter: `{"":1}`, wantPath: `""`, wantMsg: "empty field name"},
	{name: "empty field name nested", filter: `{"x":{"":1}}`, wantPath: `x.""`, wantMsg: "empty field name"},

	// Limits.
	{name: "depth of nested objects", filter: `{"a":{"b":{"c":{"d":1}}}}`, opts: filter.Options{MaxDepth: 3},
		wantPath: "a.b.c", wantMsg: "nested deeper than the limit of 3 levels"},
	{name: "depth of a dotted path", filter: `{"a.b.c.d":1}`, opts: filter.Options{MaxDepth: 3},
		wantPath: "a.b.c.d", wantMsg: "field path nests deeper than the limit of 3 levels"},
	{name: "depth of a dotted path in a nested one", filter: `{"a":{"b.c.d":1}}`, opts: filter.Options{MaxDepth: 3},
		wantPath: "a.b.c.d", wantMsg: "deeper than the limit of 3"},
	{name: "depth of an operand", filter: `{"a":{"$in":[[1]]}}`, opts: filter.Options{MaxDepth: 3},
		wantPath: "a.$in[0]", wantMsg: "nested deeper"},
	{name: "depth of an eq object", filter: `{"a":{"$eq":{"b":{"c":1}}}}`, opts: filter.Options{MaxDepth: 3},
		wantPath: "a.$eq.b", wantMsg: "nested deeper"},
	{name: "depth of or", filter: `{"$or":[{"$or":[{"a":{"b":1}}]}]}`, opts: filter.Options{MaxDepth: 4},
		wantPath: "$or[0].$or[0]", wantMsg: "nested deeper"},
	{name: "default depth", filter: deepJSON(11), wantPath: "a.a.a.a.a.a.a.a.a.a", wantMsg: "nested deeper than the limit of 10 levels"},
	{name: "nodes", filter: `{"a":{"$in":[1,2,3,4,5]}}`, opts: filter.Options{MaxNodes: 5},
		wantPath: "a.$in[2]", wantMsg: "filter has more than the limit of 5 nodes"},
	{name: "nodes in or", filter: `{"$or":[{"a":1},{"b":2},{"c":3}]}`, opts: filter.Options{MaxNodes: 6},
		wantPath: "$or[2]", wantMsg: "more than the limit of 6 nodes"},
	{name: "default nodes", filter: longIn(1000), wantPath: "a.$in[997]", wantMsg: "more than the limit of 1000 nodes"},

	// Values built in Go.
	{name: "NaN", doc: map[string]any{"a": math.NaN()}, wantPath: "a", wantMsg: "number must be finite, got NaN"},
	{name: "infinity in an operand", doc: map[string]any{"a": map[string]any{"$gt": math.Inf(1)}}, wantPath: "a.$gt", wantMsg: "number must be finite"},
	{name: "invalid json.Number", doc: map[string]any{"a": map[string]any{"$gte": json.Number("1x")}}, wantPath: "a.$gte", wantMsg: `invalid number "1x"`},
	{name: "unsupported type", doc: map[string]any{"a": time.Time{}}, wantPath: "a", wantMsg: "unsupported value of type time.Time"},
	{name: "unsupported type in $in", doc: map[string]any{"a": map[string]any{"$in": []any{1, struct{}{}}}}, wantPath: "a.$in[1]", wantMsg: "unsupported value of type struct {}"},
	{name: "typed map", doc: map[string]any{"a": map[string]string{"b": "c"}}, wantPath: "a", wantMsg: "unsupported value of type map[string]string"},
	{name: "typed slice for $or", doc: map[string]any{"$or": []map[string]any{{"a": 1}}}, wantPath: "$or", wantMsg: "got unsupported type []map[string]interface {}"},
	{name: "typed slice for $in", doc: map[string]any{"a": map[string]any{"$in": []string{"x"}}}, wantPath: "a.$in", wantMsg: "operand must be an array, got unsupported type []string"},
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range compileErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := tc.doc
			if doc == nil {
				doc = decodeObject(t, tc.filter)
			}
			f, err := filter.Compile(doc, tc.opts)
			if err == nil {
				t.Fatalf("Compile succeeded, want an error at %q", tc.wantPath)
			}
			if f != nil {
				t.Errorf("Compile returned a filter with its error")
			}
			var fe *filter.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is a %T, want *filter.Error", err, err)
			}
			if fe.Path != tc.wantPath {
				t.Errorf("Path = %q, want %q (error: %v)", fe.Path, tc.wantPath, err)
			}
			if !strings.Contains(fe.Msg, tc.wantMsg) {
				t.Errorf("Msg = %q, want it to contain %q", fe.Msg, tc.wantMsg)
			}
		})
	}
}

// TestErrorText pins the text of the errors quoted in the documentation.
func TestErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct{ filter, want string }{
		{`{"amount":{"$gte":[1]}}`, `amount.$gte: operand must be a number or a string, got array`},
		{`{"$or":[{"a":1},{"status":{"$foo":1}}]}`, `$or[1].status.$foo: unknown operator "$foo" (want $eq $neq $gt $gte $lt $lte $in $nin $exist $regex $or $and)`},
		{`{"name":{"$regex":"a("}}`, "name.$regex: invalid regular expression: missing closing ): `a(`"},
	}
	for _, tc := range tests {
		_, err := filter.Compile(decodeObject(t, tc.filter), filter.Options{})
		if err == nil || err.Error() != tc.want {
			t.Errorf("Compile(%s) error = %v, want %s", tc.filter, err, tc.want)
		}
	}
	if got := (&filter.Error{Msg: "bad"}).Error(); got != "bad" {
		t.Errorf("Error() with no path = %q, want %q", got, "bad")
	}
}

// TestCompileLimitsAccept checks that documents just within the limits
// compile, so that the limits are where they say.
func TestCompileLimitsAccept(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		filter string
		opts   filter.Options
	}{
		{"default depth", deepJSON(10), filter.Options{}},
		{"depth 3 nested", `{"a":{"b":{"c":1}}}`, filter.Options{MaxDepth: 3}},
		{"depth 3 dotted", `{"a.b.c":1}`, filter.Options{MaxDepth: 3}},
		{"depth 3 operand", `{"a":{"$in":[1]}}`, filter.Options{MaxDepth: 3}},
		{"default nodes", longIn(996), filter.Options{}},
		{"nodes 5", `{"a":{"$in":[1,2]}}`, filter.Options{MaxNodes: 5}},
		{"regex at the limit", `{"a":{"$regex":"abcd"}}`, filter.Options{MaxRegexLen: 4}},
		{"raised depth", deepJSON(30), filter.Options{MaxDepth: 30}},
	}
	for _, tc := range tests {
		if _, err := filter.Compile(decodeObject(t, tc.filter), tc.opts); err != nil {
			t.Errorf("%s: Compile: %v", tc.name, err)
		}
	}
}
