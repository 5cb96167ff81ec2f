// Package strictjson refuses JSON request fields that the schema does not
// know, instead of dropping them: a misspelt field would otherwise be
// ignored without a word (a filter typo saved as "match everything", an
// idempotency key lost). It gives a Connect codec for protobuf messages and,
// for hand-written JSON APIs, the error for an unknown field with the
// closest known name as a suggestion.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Connect's names for its JSON codec: the second is chosen by requests
// whose content type says "charset=utf-8".
const (
	codecNameJSON            = "json"
	codecNameJSONCharsetUTF8 = "json; charset=utf-8"
)

// HandlerOptions replace Connect's JSON codecs, which discard unknown
// fields, with ones that refuse them with InvalidArgument.
func HandlerOptions() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithCodec(&codec{name: codecNameJSON}),
		connect.WithCodec(&codec{name: codecNameJSONCharsetUTF8}),
	}
}

// codec is protojson without DiscardUnknown.
type codec struct{ name string }

var _ connect.Codec = (*codec)(nil)

func (c *codec) Name() string { return c.name }

func (c *codec) IsBinary() bool { return false }

func (c *codec) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", m)
	}
	return protojson.Marshal(pm)
}

// MarshalStable lets clients send idempotent calls as GET requests.
func (c *codec) MarshalStable(m any) ([]byte, error) {
	b, err := c.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	// protojson's spacing varies on purpose; compact it.
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func (c *codec) Unmarshal(data []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", m)
	}
	if len(data) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	err := protojson.Unmarshal(data, pm)
	if err == nil {
		return nil
	}
	// protojson names an unknown field but not where it is, and suggests
	// nothing: find it again, with its path.
	var doc any
	if json.Unmarshal(data, &doc) == nil {
		if uerr := unknownIn(doc, pm.ProtoReflect().Descriptor(), ""); uerr != nil {
			return uerr
		}
	}
	return err
}

// unknownIn returns an error for the first unknown field (in key order) of
// the JSON value v read as message md, or for a string field given an
// object or array; nil when there is neither.
func unknownIn(v any, md protoreflect.MessageDescriptor, path string) error {
	// Well-known types have JSON forms of their own (a Timestamp is a
	// string, a Struct any object).
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	fields := md.Fields()
	for _, k := range sortedKeys(obj) {
		if strings.HasPrefix(k, "[") { // an extension, which protojson reports itself
			continue
		}
		fd := fieldNamed(fields, k)
		if fd == nil {
			return UnknownField(k, path, fieldNames(fields))
		}
		kpath := joinPath(path, k)
		if err := checkStringValue(fd, k, obj[k], kpath); err != nil {
			return err
		}
		if err := unknownInField(fd, obj[k], kpath); err != nil {
			return err
		}
	}
	return nil
}

// fieldNamed is the field whose JSON name, or else proto name, is k; nil
// when there is none.
func fieldNamed(fields protoreflect.FieldDescriptors, k string) protoreflect.FieldDescriptor {
	if fd := fields.ByJSONName(k); fd != nil {
		return fd
	}
	return fields.ByTextName(k)
}

// fieldNames lists every field's JSON name and proto name, the names a
// request may use.
func fieldNames(fields protoreflect.FieldDescriptors) []string {
	var names []string
	for i := range fields.Len() {
		names = append(names, fields.Get(i).JSONName(), string(fields.Get(i).Name()))
	}
	return names
}

// checkStringValue returns an error when the field fd, a single string,
// is given an object or array v at kpath, under the key k.
func checkStringValue(fd protoreflect.FieldDescriptor, k string, v any, kpath string) error {
	if fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
		return nil
	}
	// Filters and event data are JSON text: a client that sends the
	// document itself gets told so.
	switch v.(type) {
	case map[string]any, []any:
		return fmt.Errorf("%s: must be a string, got a JSON %s; a filter or an event's data is sent as its JSON text, as in %q: %q",
			kpath, kindOf(v), k, `{"amount": 42}`)
	}
	return nil
}

// unknownInField looks for unknown fields in the value v at kpath of the
// message field fd: in each value of a map, each element of a list, or
// the message itself.
func unknownInField(fd protoreflect.FieldDescriptor, v any, kpath string) error {
	if fd.Message() == nil || v == nil {
		return nil
	}
	switch {
	case fd.IsMap():
		return unknownInMap(fd, v, kpath)
	case fd.IsList():
		return unknownInList(fd, v, kpath)
	}
	return unknownIn(v, fd.Message(), kpath)
}

// unknownInMap looks for unknown fields in each value, in key order, of the
// map v at kpath of the map field fd whose values are messages.
func unknownInMap(fd protoreflect.FieldDescriptor, v any, kpath string) error {
	vmd := fd.MapValue().Message()
	m, _ := v.(map[string]any)
	if vmd == nil || m == nil {
		return nil
	}
	for _, mk := range sortedKeys(m) {
		if err := unknownIn(m[mk], vmd, kpath+"["+strconv.Quote(mk)+"]"); err != nil {
			return err
		}
	}
	return nil
}

// unknownInList looks for unknown fields in each element of the list v at
// kpath of the repeated message field fd.
func unknownInList(fd protoreflect.FieldDescriptor, v any, kpath string) error {
	a, _ := v.([]any)
	for i, e := range a {
		if err := unknownIn(e, fd.Message(), fmt.Sprintf("%s[%d]", kpath, i)); err != nil {
			return err
		}
	}
	return nil
}

func kindOf(v any) string {
	if _, ok := v.([]any); ok {
		return "array"
	}
	return "object"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// UnknownField is the error for the field name found at path (empty for
// the top level) where only the known names are allowed: it names the
// closest known name, or lists them all when none is close.
func UnknownField(name, path string, known []string) error {
	where := "the request"
	if path != "" {
		where = path
	}
	msg := fmt.Sprintf("unknown field %q in %s", name, where)
	if s := Closest(name, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += " (known fields: " + strings.Join(distinct(known), ", ") + ")"
	}
	return errors.New(msg)
}

func distinct(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}

// Closest returns the known name closest to name, or "" when none is close:
// names equal but for case and underscores ("idempotencyKey" and
// "idempotency_key") are closest, then small misspellings ("eventType" for
// "event_types"). Between spellings of the same field it prefers the style
// of name: snake_case when name has an underscore, camelCase otherwise.
func Closest(name string, known []string) string {
	n := normalize(name)
	snake := strings.Contains(name, "_")
	limit := max(1, len(n)/4)
	best, bestDist := "", limit+1
	for _, k := range known {
		d := distance(n, normalize(k))
		if d > limit {
			continue
		}
		if d < bestDist || d == bestDist && strings.Contains(k, "_") == snake && strings.Contains(best, "_") != snake {
			best, bestDist = k, d
		}
	}
	return best
}

// normalize folds case and drops underscores.
func normalize(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}

// distance is the Levenshtein distance between a and b, bytewise.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
