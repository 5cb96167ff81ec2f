package registry

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookmesh/hookmesh/internal/apierr"
)

// Body and header filters are kept as BSON documents so that a later
// evaluator can read them without the proto types. Filter keys commonly
// hold operators ("$gte") and paths ("data.amount"), which FerretDB refuses
// in stored keys ("key must not start with '$' sign", "key must not contain
// '.' sign"), so keys are escaped: '%' → "%25", '$' → "%24", '.' → "%2E".
const (
	maxFilterDepth = 10
	maxFilterBytes = 64 << 10
)

var (
	keyEscaper   = strings.NewReplacer("%", "%25", "$", "%24", ".", "%2E")
	keyUnescaper = strings.NewReplacer("%25", "%", "%24", "$", "%2E", ".")
)

// escapeFilterKey returns the stored form of a filter key.
func escapeFilterKey(k string) string { return keyEscaper.Replace(k) }

// unescapeFilterKey reverses escapeFilterKey.
func unescapeFilterKey(k string) string { return keyUnescaper.Replace(k) }

// filterToBSON checks a body or headers filter and returns its stored form,
// nil for no filter.
func filterToBSON(field string, s *structpb.Struct) (bson.Raw, error) {
	if s == nil {
		return nil, nil
	}
	d, err := structToD(field, s, 1)
	if err != nil {
		return nil, err
	}
	raw, err := bson.Marshal(d)
	if err != nil {
		return nil, apierr.Invalid(field, "cannot be stored: %v", err)
	}
	if len(raw) > maxFilterBytes {
		return nil, apierr.Invalid(field, "must be at most %d KiB once encoded, got %d bytes", maxFilterBytes>>10, len(raw))
	}
	return raw, nil
}

func structToD(field string, s *structpb.Struct, depth int) (bson.D, error) {
	if depth > maxFilterDepth {
		return nil, apierr.Invalid(field, "is nested deeper than %d levels", maxFilterDepth)
	}
	keys := make([]string, 0, len(s.GetFields()))
	for k := range s.GetFields() {
		keys = append(keys, k)
	}
	// Struct fields are a map: sort them so equal filters store equal bytes.
	slices.Sort(keys)
	d := make(bson.D, 0, len(keys))
	for _, k := range keys {
		if strings.IndexByte(k, 0) >= 0 {
			return nil, apierr.Invalid(field, "keys must not contain NUL characters")
		}
		v, err := valueToBSON(field, s.GetFields()[k], depth)
		if err != nil {
			return nil, err
		}
		d = append(d, bson.E{Key: escapeFilterKey(k), Value: v})
	}
	return d, nil
}

func valueToBSON(field string, v *structpb.Value, depth int) (any, error) {
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return nil, nil
	case *structpb.Value_BoolValue:
		return k.BoolValue, nil
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return nil, apierr.Invalid(field, "numbers must be finite")
		}
		return k.NumberValue, nil
	case *structpb.Value_StringValue:
		// PostgreSQL, under FerretDB, cannot store NUL in a string.
		if strings.IndexByte(k.StringValue, 0) >= 0 {
			return nil, apierr.Invalid(field, "strings must not contain NUL characters")
		}
		return k.StringValue, nil
	case *structpb.Value_StructValue:
		return structToD(field, k.StructValue, depth+1)
	case *structpb.Value_ListValue:
		if depth+1 > maxFilterDepth {
			return nil, apierr.Invalid(field, "is nested deeper than %d levels", maxFilterDepth)
		}
		a := make(bson.A, 0, len(k.ListValue.GetValues()))
		for _, e := range k.ListValue.GetValues() {
			ev, err := valueToBSON(field, e, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, ev)
		}
		return a, nil
	default:
		return nil, apierr.Invalid(field, "holds a value of unknown kind %T", k)
	}
}

// filterFromBSON returns the filter stored by filterToBSON (nil for none).
func filterFromBSON(raw bson.Raw) (*structpb.Struct, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	return docToStruct(raw)
}

func docToStruct(raw bson.Raw) (*structpb.Struct, error) {
	elems, err := raw.Elements()
	if err != nil {
		return nil, fmt.Errorf("read filter document: %w", err)
	}
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(elems))}
	for _, e := range elems {
		v, err := rawToValue(e.Value())
		if err != nil {
			return nil, err
		}
		s.Fields[unescapeFilterKey(e.Key())] = v
	}
	return s, nil
}

func rawToValue(rv bson.RawValue) (*structpb.Value, error) {
	switch rv.Type {
	case bson.TypeNull, bson.TypeUndefined:
		return structpb.NewNullValue(), nil
	case bson.TypeBoolean:
		return structpb.NewBoolValue(rv.Boolean()), nil
	case bson.TypeDouble:
		return structpb.NewNumberValue(rv.Double()), nil
	case bson.TypeInt32:
		return structpb.NewNumberValue(float64(rv.Int32())), nil
	case bson.TypeInt64:
		return structpb.NewNumberValue(float64(rv.Int64())), nil
	case bson.TypeString:
		return structpb.NewStringValue(rv.StringValue()), nil
	case bson.TypeEmbeddedDocument:
		s, err := docToStruct(rv.Document())
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(s), nil
	case bson.TypeArray:
		vals, err := rv.Array().Values()
		if err != nil {
			return nil, fmt.Errorf("read filter array: %w", err)
		}
		l := &structpb.ListValue{Values: make([]*structpb.Value, 0, len(vals))}
		for _, e := range vals {
			v, err := rawToValue(e)
			if err != nil {
				return nil, err
			}
			l.Values = append(l.Values, v)
		}
		return structpb.NewListValue(l), nil
	default:
		return nil, fmt.Errorf("filter holds an unexpected BSON %s", rv.Type)
	}
}
