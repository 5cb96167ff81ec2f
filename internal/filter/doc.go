// Package filter matches webhook events against subscription filters: a
// small MongoDB-flavoured query language over an event's JSON body and its
// headers, in the manner of Convoy's and Svix's subscription filters.
//
// A filter is compiled once with [Compile], which validates it and reports the
// first problem as an [*Error] naming where it is, and is then matched against
// many events with [Filter.Match] (the body, decoded by [DecodeJSON]) or
// [Filter.MatchHeaders]. A compiled Filter is immutable and safe for
// concurrent use.
//
// # Documents
//
// A filter document is a JSON object. It matches when all of its keys match;
// the empty document matches everything. Every key is one of:
//
//   - A field path, such as "status" or "customer.address.city". Dots
//     separate segments and no segment may be empty ("a..b", ".a" and "a."
//     are errors). A key that starts with "$" is never a field path, but a
//     later segment may start with "$" ("meta.$ref"). A field name that
//     itself contains a dot cannot be addressed.
//   - A value operator ($eq $neq $gt $gte $lt $lte $in $nin $exist $regex),
//     which tests the value of the field the object belongs to.
//   - A logical operator, $or or $and, whose operand is a non-empty array of
//     filter documents: $or matches when any of them matches, $and when all
//     do. An empty document in the array matches everything.
//
// Any other key that starts with "$" is an error, as is an object that holds
// both field paths and value operators (they would apply to different
// values), and a value operator outside any field, as at the top level.
//
// The value of a field path is read as follows.
//
//   - A non-empty object is a nested document relative to the field: its
//     field paths continue the field's path, its value operators test the
//     field, and its $or and $and apply their documents relative to the
//     field. So {"customer": {"address": {"city": "Paris"}}} is
//     {"customer.address.city": "Paris"}, {"amount": {"$gte": 10, "$lt": 100}}
//     holds when both operators do, and
//     {"customer": {"$or": [{"tier": "gold"}, {"age": {"$gte": 18}}]}} is
//     {"$or": [{"customer.tier": "gold"}, {"customer.age": {"$gte": 18}}]}.
//     Dotted and nested paths mix freely, and $or and $and may stand beside
//     field paths at any level, as they may at the top.
//   - Anything else, the empty object included, is shorthand for $eq:
//     {"status": "paid"} is {"status": {"$eq": "paid"}}, and {"meta": {}}
//     holds when meta is an empty object. To compare with a non-empty
//     object, write $eq: {"meta": {"$eq": {"v": 1}}}.
//
// # Paths, arrays and missing fields
//
// A path is followed one segment at a time from the top of the payload. On
// an object a segment selects the member of that name. On an array, a
// segment selects that member of every element that is an object (arrays in
// arrays are not entered), and a segment that is a non-negative integer in
// canonical form ("0", "12") also selects the element at that index:
// "items.sku" reaches every item's sku, "items.0.sku" the first item's. A path
// thus reaches zero or more values. It is present when it reaches at least
// one, even a null; otherwise the field is missing. Every condition below
// is tested against each value the path reaches and, when such a value is an
// array, against each of its elements as well: the condition holds if any of
// them passes (MongoDB's rule). The exceptions are the negations $neq and
// $nin, which hold when none passes $eq or $in, and $exist, which is about
// presence.
//
// Conditions in one document are tested separately: {"items.sku": "a",
// "items.qty": 2} holds when some item has sku "a" and some item, perhaps
// another, has qty 2. There is no $elemMatch.
//
// # Operators
//
//   - $eq v: a value equals v. Equality is deep for objects (same keys, equal
//     members) and arrays (same length, equal elements in order). Numbers
//     are equal by value, so 1, 1.0 and 1e0 are equal. A number never equals
//     a string (5 is not "5"), nor true 1, nor null anything but null. An
//     array operand also matches a whole array that equals it:
//     {"tags": ["a", "b"]} holds for ["a", "b"] but not for ["b", "a"], and
//     {"tags": "a"} holds for both.
//   - $neq v: no value equals v; true on a missing field.
//   - $gt, $gte, $lt, $lte v: the operand is a number or a string. A number
//     is ordered against numbers only, a string against strings only, and
//     never one against the other. Numbers compare by exact decimal value,
//     so 12345678901234567891 > 12345678901234567890 even though float64
//     cannot tell them apart. Strings compare by their UTF-8 bytes, which is
//     Unicode code point order, without collation or normalisation.
//   - $in [v...]: a value equals ($eq) one of the array's elements; never on
//     a missing field, not even when the array holds null.
//   - $nin [v...]: no value equals any element; true on a missing field.
//   - $exist true: the field is present (a null counts). $exist false: the
//     field is missing.
//   - $regex "re": a string value matches the Go regular expression (RE2
//     syntax, https://golang.org/s/re2syntax; time linear in the input).
//     Unanchored: "paid" matches "unpaid" unless written "^paid$". Write
//     "(?i)" for case-insensitive matching. Values that are not strings never
//     match.
//
// Every operator but $neq, $nin and $exist false is false on a missing field.
//
// # Values
//
// Filter documents are what encoding/json decodes (or structpb's AsMap
// gives): map[string]any, []any, string, float64, bool and nil; json.Number
// and Go's integer types are accepted too. Payloads are decoded by
// [DecodeJSON], which keeps numbers as json.Number so that their exact text
// is compared; float64 payload numbers are accepted as well. A float64, on
// either side, stands for the shortest decimal that converts back to it
// (strconv's 'g' with precision -1), which is the text it was most likely
// decoded from; decode with json.Number to keep integers beyond 2^53 exact.
// NaN and infinities are rejected in filters and never match in payloads.
//
// # Headers
//
// [Filter.MatchHeaders] applies the filter to the object of header name to
// value. The first segment of each field path is compared with header names
// case-insensitively (ASCII, as in HTTP), so {"X-Tenant": "a"} matches the
// header "x-tenant: a". If several names differ only in case, the field
// reaches each of their values: a condition holds when one of them passes
// ($neq and $nin: when none passes $eq or $in). Header values are strings:
// a number operand never matches one, and $gt and friends compare them as
// strings. Header values have no fields, so a path of more than one segment
// is always missing.
//
// # Limits
//
// [Options] bounds a document's nesting (the document is at depth 1, every
// object or array value one deeper than its parent, and a dotted key a.b.c
// as deep as its nested form), its size (every object, array and scalar in
// it, the document included, is a node) and each $regex's length, so that a
// stored filter cannot make matching slow for everyone.
package filter
