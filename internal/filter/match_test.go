package filter_test

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/hookmesh/hookmesh/internal/filter"
)

// matchCase is a filter, a payload and whether the one matches the other.
type matchCase struct {
	name    string
	filter  string
	payload string
	want    bool
}

// matchCases are the semantics of Match, one rule a case. The fuzz targets
// take their seeds from them too.
var matchCases = []matchCase{
	// Empty documents.
	{"empty filter matches an object", `{}`, `{"a":1}`, true},
	{"empty filter matches null", `{}`, `null`, true},
	{"empty filter matches a scalar", `{}`, `"x"`, true},

	// $eq and its shorthand.
	{"shorthand eq string", `{"status":"paid"}`, `{"status":"paid"}`, true},
	{"shorthand eq string differs", `{"status":"paid"}`, `{"status":"unpaid"}`, false},
	{"explicit eq", `{"status":{"$eq":"paid"}}`, `{"status":"paid"}`, true},
	{"eq is case-sensitive", `{"status":"paid"}`, `{"status":"PAID"}`, false},
	{"eq number", `{"amount":5}`, `{"amount":5}`, true},
	{"eq number by value 5.0", `{"amount":5}`, `{"amount":5.0}`, true},
	{"eq number by value 5e2", `{"amount":500}`, `{"amount":5e2}`, true},
	{"eq number by value 0.1", `{"x":0.1}`, `{"x":1E-1}`, true},
	{"eq zero and minus zero", `{"x":0}`, `{"x":-0.0}`, true},
	{"eq number differs", `{"amount":5}`, `{"amount":5.000000000000000000001}`, false},
	{"number never equals string", `{"amount":5}`, `{"amount":"5"}`, false},
	{"string never equals number", `{"amount":"5"}`, `{"amount":5}`, false},
	{"eq true", `{"ok":true}`, `{"ok":true}`, true},
	{"true is not 1", `{"ok":true}`, `{"ok":1}`, false},
	{"true is not \"true\"", `{"ok":true}`, `{"ok":"true"}`, false},
	{"eq false", `{"ok":false}`, `{"ok":false}`, true},
	{"eq on a missing field", `{"status":"paid"}`, `{"state":"paid"}`, false},

	// Missing versus null.
	{"null matches present null", `{"a":null}`, `{"a":null}`, true},
	{"null does not match missing", `{"a":null}`, `{}`, false},
	{"null does not match zero", `{"a":null}`, `{"a":0}`, false},
	{"null does not match false", `{"a":null}`, `{"a":false}`, false},
	{"null does not match empty string", `{"a":null}`, `{"a":""}`, false},
	{"null matches a null element", `{"a":null}`, `{"a":[1,null]}`, true},
	{"null under a null parent is missing", `{"a.b":null}`, `{"a":null}`, false},

	// Deep equality.
	{"eq object deep", `{"meta":{"$eq":{"v":1,"w":[1,2]}}}`, `{"meta":{"w":[1,2.0],"v":1.0}}`, true},
	{"eq object extra key", `{"meta":{"$eq":{"v":1}}}`, `{"meta":{"v":1,"w":2}}`, false},
	{"eq object missing key", `{"meta":{"$eq":{"v":1,"w":2}}}`, `{"meta":{"v":1}}`, false},
	{"eq object number vs string member", `{"meta":{"$eq":{"v":1}}}`, `{"meta":{"v":"1"}}`, false},
	{"eq object with null member vs missing member", `{"meta":{"$eq":{"v":null}}}`, `{"meta":{"w":null}}`, false},
	{"empty object value is eq {}", `{"meta":{}}`, `{"meta":{}}`, true},
	{"empty object value vs non-empty", `{"meta":{}}`, `{"meta":{"a":1}}`, false},
	{"empty object value vs missing", `{"meta":{}}`, `{}`, false},
	{"eq object operand with $ keys is literal", `{"meta":{"$eq":{"$gt":1}}}`, `{"meta":{"$gt":1}}`, true},

	// Arrays of scalars.
	{"scalar eq matches an element", `{"tags":"b"}`, `{"tags":["a","b"]}`, true},
	{"scalar eq matches no element", `{"tags":"c"}`, `{"tags":["a","b"]}`, false},
	{"scalar eq on empty array", `{"tags":"a"}`, `{"tags":[]}`, false},
	{"array eq matches the whole array", `{"tags":["a","b"]}`, `{"tags":["a","b"]}`, true},
	{"array eq is ordered", `{"tags":["a","b"]}`, `{"tags":["b","a"]}`, false},
	{"array eq is not a subset", `{"tags":["a"]}`, `{"tags":["a","b"]}`, false},
	{"array eq matches a nested element", `{"tags":["a","b"]}`, `{"tags":[["a","b"],"c"]}`, true},
	{"array eq numbers by value", `{"v":[1,2]}`, `{"v":[1.0,2e0]}`, true},
	{"empty array eq", `{"tags":[]}`, `{"tags":[]}`, true},
	{"empty array eq vs non-empty", `{"tags":[]}`, `{"tags":["a"]}`, false},
	{"nested arrays are not flattened", `{"a":1}`, `{"a":[[1]]}`, false},
	{"scalar eq on a root array is not a field", `{"a":1}`, `[1]`, false},

	// Arrays of objects.
	{"path through array of objects", `{"items.sku":"b"}`, `{"items":[{"sku":"a"},{"sku":"b"}]}`, true},
	{"path through array of objects, no match", `{"items.sku":"c"}`, `{"items":[{"sku":"a"},{"sku":"b"}]}`, false},
	{"path through two arrays", `{"orders.items.sku":"z"}`, `{"orders":[{"items":[{"sku":"a"}]},{"items":[{"sku":"z"}]}]}`, true},
	{"array index", `{"items.0.sku":"a"}`, `{"items":[{"sku":"a"},{"sku":"b"}]}`, true},
	{"array index selects one element", `{"items.1.sku":"a"}`, `{"items":[{"sku":"a"},{"sku":"b"}]}`, false},
	{"array index past the end is missing", `{"items.5.sku":{"$exist":false}}`, `{"items":[{"sku":"a"}]}`, true},
	{"array index of scalars", `{"tags.1":"b"}`, `{"tags":["a","b"]}`, true},
	{"non-canonical index is a field name", `{"tags.01":"b"}`, `{"tags":["a","b"]}`, false},
	{"numeric segment on an object is a key", `{"m.0":"x"}`, `{"m":{"0":"x"}}`, true},
	{"index enters a nested array", `{"a.0.b":1}`, `{"a":[[{"b":1}]]}`, true},
	{"nested arrays are not entered by name", `{"a.b":1}`, `{"a":[[{"b":1}]]}`, false},
	{"conditions are tested separately (no elemMatch)", `{"items.sku":"a","items.qty":2}`, `{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}`, true},
	{"root array of objects", `{"a":1}`, `[{"a":2},{"a":1}]`, true},
	{"eq object on an array element", `{"items":{"$eq":{"sku":"a"}}}`, `{"items":[{"sku":"b"},{"sku":"a"}]}`, true},

	// Paths.
	{"dotted path", `{"customer.address.city":"Paris"}`, `{"customer":{"address":{"city":"Paris"}}}`, true},
	{"nested path", `{"customer":{"address":{"city":"Paris"}}}`, `{"customer":{"address":{"city":"Paris"}}}`, true},
	{"nested path is not object equality", `{"customer":{"address":{"city":"Paris"}}}`, `{"customer":{"name":"A","address":{"city":"Paris","zip":"75001"}}}`, true},
	{"mixed dotted and nested path", `{"customer":{"address.city":"Paris"}}`, `{"customer":{"address":{"city":"Paris"}}}`, true},
	{"nested path differs", `{"customer":{"address":{"city":"Paris"}}}`, `{"customer":{"address":{"city":"Lyon"}}}`, false},
	{"path through a missing parent", `{"customer.address.city":"Paris"}`, `{"customer":{}}`, false},
	{"path through a string", `{"customer.name.first":"A"}`, `{"customer":{"name":"A"}}`, false},
	{"path on a scalar payload", `{"a":1}`, `5`, false},
	{"$ in a later segment is a field name", `{"meta.$ref":"x"}`, `{"meta":{"$ref":"x"}}`, true},
	{"several fields are a conjunction", `{"a":1,"b":2}`, `{"a":1,"b":2}`, true},
	{"several fields, one fails", `{"a":1,"b":2}`, `{"a":1,"b":3}`, false},
	{"nested fields are a conjunction", `{"c":{"a":1,"b":2}}`, `{"c":{"a":1,"b":3}}`, false},

	// Unicode.
	{"unicode eq", `{"city":"Zürich"}`, `{"city":"Zürich"}`, true},
	{"unicode escape eq", `{"city":"Z\u00fcrich"}`, `{"city":"Zürich"}`, true},
	{"unicode is not normalised (NFC vs NFD)", `{"city":"Zürich"}`, `{"city":"Zu\u0308rich"}`, false},
	{"unicode field name", `{"città":"Roma"}`, `{"città":"Roma"}`, true},
	{"emoji eq", `{"mood":"🎉"}`, `{"mood":"🎉"}`, true},
	{"unicode orders by code point", `{"s":{"$gt":"z"}}`, `{"s":"é"}`, true},

	// $neq.
	{"neq different", `{"status":{"$neq":"paid"}}`, `{"status":"open"}`, true},
	{"neq same", `{"status":{"$neq":"paid"}}`, `{"status":"paid"}`, false},
	{"neq on a missing field", `{"status":{"$neq":"paid"}}`, `{}`, true},
	{"neq null on a missing field", `{"a":{"$neq":null}}`, `{}`, true},
	{"neq null on null", `{"a":{"$neq":null}}`, `{"a":null}`, false},
	{"neq number vs string", `{"a":{"$neq":5}}`, `{"a":"5"}`, true},
	{"neq number by value", `{"a":{"$neq":5}}`, `{"a":5.0}`, false},
	{"neq array with the element", `{"tags":{"$neq":"a"}}`, `{"tags":["a","b"]}`, false},
	{"neq array without the element", `{"tags":{"$neq":"a"}}`, `{"tags":["b","c"]}`, true},
	{"neq empty array", `{"tags":{"$neq":"a"}}`, `{"tags":[]}`, true},
	{"neq whole array", `{"tags":{"$neq":["a","b"]}}`, `{"tags":["a","b"]}`, false},
	{"neq through array of objects, one equal", `{"items.sku":{"$neq":"a"}}`, `{"items":[{"sku":"a"},{"sku":"b"}]}`, false},
	{"neq through array of objects, none equal", `{"items.sku":{"$neq":"z"}}`, `{"items":[{"sku":"a"},{"sku":"b"}]}`, true},

	// $gt, $gte, $lt, $lte.
	{"gt above", `{"n":{"$gt":10}}`, `{"n":11}`, true},
	{"gt equal", `{"n":{"$gt":10}}`, `{"n":10}`, false},
	{"gte equal", `{"n":{"$gte":10}}`, `{"n":10.0}`, true},
	{"gte below", `{"n":{"$gte":10}}`, `{"n":9.999}`, false},
	{"lt below", `{"n":{"$lt":10}}`, `{"n":-11}`, true},
	{"lt equal", `{"n":{"$lt":10}}`, `{"n":10}`, false},
	{"lte equal", `{"n":{"$lte":10}}`, `{"n":1e1}`, true},
	{"lte above", `{"n":{"$lte":10}}`, `{"n":10.0001}`, false},
	{"negatives", `{"n":{"$lt":-1}}`, `{"n":-2}`, true},
	{"negatives, not below", `{"n":{"$lt":-1}}`, `{"n":-0.5}`, false},
	{"fractions", `{"n":{"$gt":0.001}}`, `{"n":0.01}`, true},
	{"beyond float64 range", `{"n":{"$gt":1e308}}`, `{"n":1e309}`, true},
	{"beyond float64 precision", `{"n":{"$lt":0.30000000000000000001}}`, `{"n":0.3}`, true},
	{"range inside", `{"amount":{"$gte":10,"$lt":100}}`, `{"amount":50}`, true},
	{"range lower bound", `{"amount":{"$gte":10,"$lt":100}}`, `{"amount":10}`, true},
	{"range upper bound", `{"amount":{"$gte":10,"$lt":100}}`, `{"amount":100}`, false},
	{"gt string", `{"name":{"$gt":"b"}}`, `{"name":"c"}`, true},
	{"gt string below", `{"name":{"$gt":"b"}}`, `{"name":"a"}`, false},
	{"strings are bytewise: upper case sorts first", `{"name":{"$gt":"b"}}`, `{"name":"C"}`, false},
	{"strings are not numbers", `{"v":{"$lt":"9"}}`, `{"v":"10"}`, true},
	{"dates as ISO strings", `{"at":{"$gte":"2024-01-01T00:00:00Z"}}`, `{"at":"2024-06-30T12:00:00Z"}`, true},
	{"number never orders against string", `{"n":{"$gt":1}}`, `{"n":"2"}`, false},
	{"string never orders against number", `{"n":{"$lt":"z"}}`, `{"n":1}`, false},
	{"order vs null", `{"n":{"$lte":0}}`, `{"n":null}`, false},
	{"order vs bool", `{"n":{"$gte":0}}`, `{"n":true}`, false},
	{"order on a missing field", `{"n":{"$lt":100}}`, `{}`, false},
	{"order any element", `{"scores":{"$gt":90}}`, `{"scores":[10,95]}`, true},
	{"order no element", `{"scores":{"$gt":90}}`, `{"scores":[10,20]}`, false},
	{"order range over elements is per operator", `{"scores":{"$gt":90,"$lt":20}}`, `{"scores":[10,95]}`, true},

	// Big integers.
	{"big int eq", `{"id":12345678901234567890}`, `{"id":12345678901234567890}`, true},
	{"big int eq differs", `{"id":12345678901234567890}`, `{"id":12345678901234567891}`, false},
	{"big int gt", `{"id":{"$gt":12345678901234567890}}`, `{"id":12345678901234567891}`, true},
	{"big int gt equal", `{"id":{"$gt":12345678901234567890}}`, `{"id":12345678901234567890}`, false},
	{"big int lt", `{"id":{"$lt":12345678901234567891}}`, `{"id":12345678901234567890}`, true},
	{"big int in", `{"id":{"$in":[12345678901234567891]}}`, `{"id":12345678901234567890}`, false},
	{"big int neq", `{"id":{"$neq":12345678901234567891}}`, `{"id":12345678901234567890}`, true},
	{"big int vs exponent form", `{"id":12345678901234567890}`, `{"id":1.234567890123456789e19}`, true},

	// $in and $nin.
	{"in hit", `{"status":{"$in":["paid","refunded"]}}`, `{"status":"refunded"}`, true},
	{"in miss", `{"status":{"$in":["paid","refunded"]}}`, `{"status":"open"}`, false},
	{"in on a missing field", `{"status":{"$in":["paid"]}}`, `{}`, false},
	{"in null on a missing field", `{"status":{"$in":[null]}}`, `{}`, false},
	{"in null on null", `{"status":{"$in":[null]}}`, `{"status":null}`, true},
	{"in number vs string", `{"n":{"$in":["5"]}}`, `{"n":5}`, false},
	{"in numbers by value", `{"n":{"$in":[1,5]}}`, `{"n":5.00}`, true},
	{"in array element", `{"tags":{"$in":["x","b"]}}`, `{"tags":["a","b"]}`, true},
	{"in whole array", `{"tags":{"$in":[["a","b"]]}}`, `{"tags":["a","b"]}`, true},
	{"in object", `{"m":{"$in":[{"a":1}]}}`, `{"m":{"a":1}}`, true},
	{"in empty list", `{"n":{"$in":[]}}`, `{"n":1}`, false},
	{"in long list hit", `{"c":{"$in":["a","b","c","d","e","f","g","h","i","j",5]}}`, `{"c":"j"}`, true},
	{"in long list miss", `{"c":{"$in":["a","b","c","d","e","f","g","h","i","j",5]}}`, `{"c":"z"}`, false},
	{"in long list non-string hit", `{"c":{"$in":["a","b","c","d","e","f","g","h","i","j",5]}}`, `{"c":5}`, true},
	{"in long list number vs string", `{"c":{"$in":["a","b","c","d","e","f","g","h","i","j",5]}}`, `{"c":"5"}`, false},
	{"nin miss", `{"status":{"$nin":["paid","refunded"]}}`, `{"status":"open"}`, true},
	{"nin hit", `{"status":{"$nin":["paid","refunded"]}}`, `{"status":"paid"}`, false},
	{"nin on a missing field", `{"status":{"$nin":["paid"]}}`, `{}`, true},
	{"nin on null", `{"status":{"$nin":[null]}}`, `{"status":null}`, false},
	{"nin array none", `{"tags":{"$nin":["x","y"]}}`, `{"tags":["a","b"]}`, true},
	{"nin array one", `{"tags":{"$nin":["x","b"]}}`, `{"tags":["a","b"]}`, false},
	{"nin empty list", `{"n":{"$nin":[]}}`, `{"n":1}`, true},
	{"nin number vs string", `{"n":{"$nin":["5"]}}`, `{"n":5}`, true},

	// $exist.
	{"exist true present", `{"a":{"$exist":true}}`, `{"a":1}`, true},
	{"exist true null", `{"a":{"$exist":true}}`, `{"a":null}`, true},
	{"exist true missing", `{"a":{"$exist":true}}`, `{"b":1}`, false},
	{"exist false missing", `{"a":{"$exist":false}}`, `{"b":1}`, true},
	{"exist false present", `{"a":{"$exist":false}}`, `{"a":false}`, false},
	{"exist false null", `{"a":{"$exist":false}}`, `{"a":null}`, false},
	{"exist under a null parent", `{"a.b":{"$exist":true}}`, `{"a":null}`, false},
	{"exist nested null", `{"a.b":{"$exist":true}}`, `{"a":{"b":null}}`, true},
	{"exist empty array", `{"a":{"$exist":true}}`, `{"a":[]}`, true},
	{"exist in one element", `{"items.sku":{"$exist":true}}`, `{"items":[{"x":1},{"sku":null}]}`, true},
	{"exist false in one element", `{"items.sku":{"$exist":false}}`, `{"items":[{"x":1},{"sku":null}]}`, false},
	{"exist false in no element", `{"items.sku":{"$exist":false}}`, `{"items":[{"x":1}]}`, true},
	{"exist false on empty array", `{"items.sku":{"$exist":false}}`, `{"items":[]}`, true},
	{"exist on a scalar payload", `{"a":{"$exist":false}}`, `7`, true},

	// $regex.
	{"regex unanchored", `{"name":{"$regex":"paid"}}`, `{"name":"unpaid"}`, true},
	{"regex anchored start", `{"name":{"$regex":"^paid"}}`, `{"name":"unpaid"}`, false},
	{"regex anchored both", `{"name":{"$regex":"^paid$"}}`, `{"name":"paid"}`, true},
	{"regex anchored end", `{"name":{"$regex":"^paid$"}}`, `{"name":"paid!"}`, false},
	{"regex anchors are not multiline", `{"name":{"$regex":"^b$"}}`, `{"name":"a\nb"}`, false},
	{"regex multiline flag", `{"name":{"$regex":"(?m)^b$"}}`, `{"name":"a\nb"}`, true},
	{"regex case-sensitive", `{"name":{"$regex":"^paid$"}}`, `{"name":"PAID"}`, false},
	{"regex case-insensitive", `{"name":{"$regex":"(?i)^paid$"}}`, `{"name":"PAID"}`, true},
	{"regex alternation", `{"event":{"$regex":"^(order|invoice)\\."}}`, `{"event":"invoice.paid"}`, true},
	{"regex not against numbers", `{"n":{"$regex":"1"}}`, `{"n":123}`, false},
	{"regex not against null", `{"n":{"$regex":".*"}}`, `{"n":null}`, false},
	{"regex on a missing field", `{"n":{"$regex":".*"}}`, `{}`, false},
	{"regex any element", `{"tags":{"$regex":"^v\\d+$"}}`, `{"tags":["x","v12"]}`, true},
	{"regex dot is a code point", `{"city":{"$regex":"^Z.rich$"}}`, `{"city":"Zürich"}`, true},
	{"regex counts code points", `{"city":{"$regex":"^.{6}$"}}`, `{"city":"Zürich"}`, true},
	{"regex unicode class", `{"city":{"$regex":"^\\p{L}+$"}}`, `{"city":"Zürich"}`, true},

	// $or and $and.
	{"or first", `{"$or":[{"a":1},{"b":2}]}`, `{"a":1}`, true},
	{"or second", `{"$or":[{"a":1},{"b":2}]}`, `{"b":2}`, true},
	{"or neither", `{"$or":[{"a":1},{"b":2}]}`, `{"a":2,"b":1}`, false},
	{"or beside a field", `{"type":"order","$or":[{"a":1},{"b":2}]}`, `{"type":"order","b":2}`, true},
	{"or beside a failing field", `{"type":"order","$or":[{"a":1},{"b":2}]}`, `{"type":"invoice","b":2}`, false},
	{"and all", `{"$and":[{"a":1},{"b":2}]}`, `{"a":1,"b":2}`, true},
	{"and one fails", `{"$and":[{"a":1},{"b":2}]}`, `{"a":1,"b":3}`, false},
	{"and of ranges on one field", `{"$and":[{"n":{"$gt":1}},{"n":{"$lt":3}}]}`, `{"n":2}`, true},
	{"or inside and", `{"$and":[{"$or":[{"a":1},{"b":1}]},{"$or":[{"c":1},{"d":1}]}]}`, `{"b":1,"c":1}`, true},
	{"or inside and, one or fails", `{"$and":[{"$or":[{"a":1},{"b":1}]},{"$or":[{"c":1},{"d":1}]}]}`, `{"b":1,"e":1}`, false},
	{"and inside or", `{"$or":[{"$and":[{"a":1},{"b":1}]},{"c":1}]}`, `{"a":1,"b":2}`, false},
	{"empty document in or", `{"$or":[{},{"a":1}]}`, `{}`, true},
	{"neq inside or", `{"$or":[{"a":{"$neq":1}},{"b":1}]}`, `{"a":1,"b":2}`, false},

	// $or and $and inside a field.
	{"field or, first branch", `{"customer":{"$or":[{"tier":"gold"},{"age":{"$gte":18}}]}}`, `{"customer":{"tier":"gold","age":12}}`, true},
	{"field or, second branch", `{"customer":{"$or":[{"tier":"gold"},{"age":{"$gte":18}}]}}`, `{"customer":{"tier":"silver","age":20}}`, true},
	{"field or, neither", `{"customer":{"$or":[{"tier":"gold"},{"age":{"$gte":18}}]}}`, `{"customer":{"tier":"silver","age":12}}`, false},
	{"field or is relative to the field", `{"customer":{"$or":[{"tier":"gold"}]}}`, `{"tier":"gold","customer":{}}`, false},
	{"field or on a missing field", `{"customer":{"$or":[{"tier":"gold"},{"age":{"$gte":18}}]}}`, `{}`, false},
	{"field or beside a nested field", `{"customer":{"country":"FR","$or":[{"tier":"gold"},{"vip":true}]}}`, `{"customer":{"country":"FR","vip":true}}`, true},
	{"field or beside a failing nested field", `{"customer":{"country":"FR","$or":[{"tier":"gold"},{"vip":true}]}}`, `{"customer":{"country":"DE","vip":true}}`, false},
	{"field or of value operators", `{"status":{"$or":[{"$eq":"paid"},{"$regex":"^refund"}]}}`, `{"status":"refunded"}`, true},
	{"field or of value operators, neither", `{"status":{"$or":[{"$eq":"paid"},{"$regex":"^refund"}]}}`, `{"status":"open"}`, false},
	{"field or with exist false", `{"coupon":{"$or":[{"$exist":false},{"$eq":null}]}}`, `{}`, true},
	{"field and", `{"n":{"$and":[{"$gt":1},{"$lt":3}]}}`, `{"n":2}`, true},
	{"field and fails", `{"n":{"$and":[{"$gt":1},{"$lt":3}]}}`, `{"n":3}`, false},
	{"or in field in or", `{"$or":[{"x":1},{"a":{"$or":[{"b":{"$or":[{"c":1},{"d":1}]}},{"e":1}]}}]}`, `{"a":{"b":{"d":1}}}`, true},
	{"or in field in and", `{"$and":[{"a":{"$or":[{"b":1},{"c":1}]}},{"d":1}]}`, `{"a":{"c":1},"d":1}`, true},
	{"dotted field or", `{"data.customer":{"$or":[{"tier":"gold"}]}}`, `{"data":{"customer":{"tier":"gold"}}}`, true},
	{"field or over an array of objects", `{"customers":{"$or":[{"tier":"gold"}]}}`, `{"customers":[{"tier":"silver"},{"tier":"gold"}]}`, true},
}

// compileJSON compiles a filter written as JSON with the default options.
func compileJSON(tb testing.TB, doc string) *filter.Filter {
	tb.Helper()
	f, err := filter.Compile(decodeObject(tb, doc), filter.Options{})
	if err != nil {
		tb.Fatalf("Compile(%s): %v", doc, err)
	}
	return f
}

// decodeObject decodes a JSON object as Compile takes it.
func decodeObject(tb testing.TB, doc string) map[string]any {
	tb.Helper()
	v := decode(tb, doc)
	m, ok := v.(map[string]any)
	if !ok {
		tb.Fatalf("%s is not a JSON object", doc)
	}
	return m
}

func decode(tb testing.TB, s string) any {
	tb.Helper()
	v, err := filter.DecodeJSON([]byte(s))
	if err != nil {
		tb.Fatalf("DecodeJSON(%s): %v", s, err)
	}
	return v
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range matchCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := compileJSON(t, tc.filter)
			if got := f.Match(decode(t, tc.payload)); got != tc.want {
				t.Errorf("filter %s on %s: Match = %v, want %v", tc.filter, tc.payload, got, tc.want)
			}
		})
	}
}

// TestMatchFloatPayload checks payloads decoded without UseNumber, as
// json.Unmarshal does: float64 numbers stand for their shortest decimal.
func TestMatchFloatPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter, payload string
		want            bool
	}{
		{`{"n":5}`, `{"n":5}`, true},
		{`{"n":0.1}`, `{"n":0.1}`, true},
		{`{"n":{"$gt":0.1}}`, `{"n":0.1}`, false},
		{`{"n":{"$in":[1,2,3]}}`, `{"n":3.0}`, true},
		{`{"n":"5"}`, `{"n":5}`, false},
		{`{"n":{"$lt":9007199254740993}}`, `{"n":9007199254740992}`, true},
		{`{"m":{"$eq":{"a":[1,2]}}}`, `{"m":{"a":[1,2]}}`, true},
	}
	for _, tc := range tests {
		var payload any
		if err := json.Unmarshal([]byte(tc.payload), &payload); err != nil {
			t.Fatal(err)
		}
		if got := compileJSON(t, tc.filter).Match(payload); got != tc.want {
			t.Errorf("filter %s on float64 payload %s: Match = %v, want %v", tc.filter, tc.payload, got, tc.want)
		}
	}
}

// TestCompileGoValues checks filter documents built in Go or decoded
// without UseNumber, as from google.protobuf.Struct's AsMap.
func TestCompileGoValues(t *testing.T) {
	t.Parallel()
	doc := map[string]any{
		"i":   3,
		"i64": int64(-7),
		"u8":  uint8(200),
		"f":   0.1,
		"f32": float32(2.5),
		"num": json.Number("12345678901234567890"),
		"in":  map[string]any{"$in": []any{int64(1), 2.0}},
		"gt":  map[string]any{"$gt": int64(10)},
	}
	f, err := filter.Compile(doc, filter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	match := `{"i":3,"i64":-7.0,"u8":200,"f":0.1,"f32":2.50,"num":12345678901234567890,"in":2,"gt":11}`
	if !f.Match(decode(t, match)) {
		t.Errorf("Match(%s) = false, want true", match)
	}
	miss := `{"i":3,"i64":-7.0,"u8":200,"f":0.1,"f32":2.50,"num":12345678901234567891,"in":2,"gt":11}`
	if f.Match(decode(t, miss)) {
		t.Errorf("Match(%s) = true, want false", miss)
	}
}

// headerCase is a filter, request headers and whether the one matches the
// other.
type headerCase struct {
	name    string
	filter  string
	headers map[string]string
	want    bool
}

var headerCases = []headerCase{
	{"exact name", `{"x-tenant":"a"}`, map[string]string{"x-tenant": "a"}, true},
	{"filter name in another case", `{"X-Tenant":"a"}`, map[string]string{"x-tenant": "a"}, true},
	{"header name in another case", `{"x-tenant":"a"}`, map[string]string{"X-TENANT": "a"}, true},
	{"canonical header name", `{"X-TENANT":"a"}`, map[string]string{"X-Tenant": "a"}, true},
	{"values are case-sensitive", `{"X-Tenant":"a"}`, map[string]string{"x-tenant": "A"}, false},
	{"missing header", `{"X-Tenant":"a"}`, map[string]string{"x-other": "a"}, false},
	{"nil headers", `{"X-Tenant":"a"}`, nil, false},
	{"empty filter on nil headers", `{}`, nil, true},
	{"exist false on a missing header", `{"X-Tenant":{"$exist":false}}`, map[string]string{}, true},
	{"exist true", `{"X-Tenant":{"$exist":true}}`, map[string]string{"X-TENANT": ""}, true},
	{"neq on a missing header", `{"X-Tenant":{"$neq":"a"}}`, map[string]string{}, true},
	{"in", `{"X-Event":{"$in":["order.paid","order.refunded"]}}`, map[string]string{"x-event": "order.refunded"}, true},
	{"nin", `{"X-Event":{"$nin":["order.paid"]}}`, map[string]string{"x-event": "order.paid"}, false},
	{"regex", `{"User-Agent":{"$regex":"(?i)^curl/"}}`, map[string]string{"user-agent": "Curl/8.5"}, true},
	{"values are strings, not numbers", `{"X-Retry":5}`, map[string]string{"x-retry": "5"}, false},
	{"string operand", `{"X-Retry":"5"}`, map[string]string{"x-retry": "5"}, true},
	{"string ordering", `{"X-Retry":{"$gte":"3"}}`, map[string]string{"x-retry": "5"}, true},
	{"headers have no fields", `{"X-Tenant.id":"a"}`, map[string]string{"x-tenant": "a"}, false},
	{"headers have no fields, exist false", `{"X-Tenant.id":{"$exist":false}}`, map[string]string{"x-tenant": "a"}, true},
	{"or of headers", `{"$or":[{"X-A":"1"},{"X-B":"2"}]}`, map[string]string{"x-b": "2"}, true},
	{"and of headers", `{"X-A":"1","x-b":"2"}`, map[string]string{"X-a": "1", "X-B": "3"}, false},
	{"names differing in case act as an array: eq", `{"x-a":"2"}`, map[string]string{"X-A": "1", "x-a": "2"}, true},
	{"names differing in case act as an array: neq", `{"x-a":{"$neq":"1"}}`, map[string]string{"X-A": "1", "x-a": "2"}, false},
	{"only ASCII folds", `{"X-K":"1"}`, map[string]string{"x-\u212a": "1"}, false},
}

func TestMatchHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range headerCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := compileJSON(t, tc.filter)
			if got := f.MatchHeaders(tc.headers); got != tc.want {
				t.Errorf("filter %s on headers %v: MatchHeaders = %v, want %v", tc.filter, tc.headers, got, tc.want)
			}
		})
	}
}

func TestIsEmpty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter string
		want   bool
	}{
		{`{}`, true},
		{`{"$and":[{}]}`, true},
		{`{"$or":[{},{"a":1}]}`, true},
		{`{"a":1}`, false},
		{`{"a":{}}`, false},
		{`{"$or":[{"a":1}]}`, false},
	}
	for _, tc := range tests {
		if got := compileJSON(t, tc.filter).IsEmpty(); got != tc.want {
			t.Errorf("Compile(%s).IsEmpty() = %v, want %v", tc.filter, got, tc.want)
		}
	}
	f, err := filter.Compile(nil, filter.Options{})
	if err != nil || !f.IsEmpty() || !f.Match(map[string]any{"a": 1}) || !f.MatchHeaders(nil) {
		t.Errorf("Compile(nil) = %v, %v: want an empty filter that matches everything", f, err)
	}
	var none *filter.Filter
	if !none.IsEmpty() || !none.Match(nil) || !none.MatchHeaders(nil) {
		t.Error("a nil *Filter should be empty and match everything")
	}
}

func TestMatchConcurrent(t *testing.T) {
	t.Parallel()
	f := compileJSON(t, `{"type":"order.paid","data.amount":{"$gte":10},"data.customer":{"$or":[{"tier":"gold"},{"name":{"$regex":"^A"}}]}}`)
	yes := decode(t, `{"type":"order.paid","data":{"amount":12,"customer":{"tier":"silver","name":"Ada"}}}`)
	no := decode(t, `{"type":"order.paid","data":{"amount":12,"customer":{"tier":"silver","name":"Bob"}}}`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				if !f.Match(yes) || f.Match(no) {
					t.Error("concurrent Match gave a wrong answer")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	v, err := filter.DecodeJSON([]byte(` {"n": 12345678901234567891} `))
	if err != nil {
		t.Fatal(err)
	}
	if n := v.(map[string]any)["n"]; n != json.Number("12345678901234567891") {
		t.Errorf("n = %#v, want json.Number", n)
	}
	for _, bad := range []string{``, `{`, `{"a":1} {"b":2}`, `{"a":1}x`, `1 2`} {
		if _, err := filter.DecodeJSON([]byte(bad)); err == nil {
			t.Errorf("DecodeJSON(%q) succeeded, want an error", bad)
		}
	}
}
