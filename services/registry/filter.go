package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/filter"
)

// A subscription's body and header filters arrive as JSON text and are
// stored as that text, byte for byte, so that a number keeps every digit
// (as a BSON double it would not) and the filter is returned as written.
// Subscriptions saved before filters were text hold BSON documents, with
// keys escaped because FerretDB refuses stored keys that start with '$' or
// hold a '.': '%' → "%25", '$' → "%24", '.' → "%2E". They are read and
// shown as JSON text.
const maxFilterBytes = 64 << 10

var keyUnescaper = strings.NewReplacer("%25", "%", "%24", "$", "%2E", ".")

// unescapeFilterKey returns the key of a filter stored as a BSON document.
func unescapeFilterKey(k string) string { return keyUnescaper.Replace(k) }

// checkFilterText validates a body or headers filter given as JSON text:
// a JSON object the router can evaluate (known operators, valid regular
// expressions, operands of the right type, not too deep or large). The
// empty text is no filter.
func checkFilterText(field, text string) error {
	if text == "" {
		return nil
	}
	if len(text) > maxFilterBytes {
		return apierr.Invalid(field, "must be at most %d KiB of JSON text, got %d bytes", maxFilterBytes>>10, len(text))
	}
	doc, err := filter.ParseDocument([]byte(text))
	if err == nil {
		_, err = filter.Compile(doc, filter.Options{})
	}
	if err != nil {
		var fe *filter.Error
		if errors.As(err, &fe) && fe.Path != "" {
			return apierr.Invalid(field+"."+fe.Path, "%s", fe.Msg)
		}
		return apierr.Invalid(field, "%v", err)
	}
	return nil
}

// legacyFilterText returns, as JSON text, a filter stored as a BSON
// document by an earlier version ("" for none).
func legacyFilterText(raw bson.Raw) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	v, err := rawToJSON(bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: raw})
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode filter: %w", err)
	}
	return string(b), nil
}

// rawToJSON converts a stored BSON value to what encoding/json writes.
func rawToJSON(rv bson.RawValue) (any, error) {
	switch rv.Type {
	case bson.TypeNull, bson.TypeUndefined:
		return nil, nil
	case bson.TypeBoolean:
		return rv.Boolean(), nil
	case bson.TypeDouble:
		return rv.Double(), nil
	case bson.TypeInt32:
		return rv.Int32(), nil
	case bson.TypeInt64:
		return rv.Int64(), nil
	case bson.TypeString:
		return rv.StringValue(), nil
	case bson.TypeEmbeddedDocument:
		elems, err := rv.Document().Elements()
		if err != nil {
			return nil, fmt.Errorf("read filter document: %w", err)
		}
		m := make(map[string]any, len(elems))
		for _, e := range elems {
			v, err := rawToJSON(e.Value())
			if err != nil {
				return nil, err
			}
			m[unescapeFilterKey(e.Key())] = v
		}
		return m, nil
	case bson.TypeArray:
		vals, err := rv.Array().Values()
		if err != nil {
			return nil, fmt.Errorf("read filter array: %w", err)
		}
		a := make([]any, 0, len(vals))
		for _, e := range vals {
			v, err := rawToJSON(e)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	default:
		return nil, fmt.Errorf("filter holds an unexpected BSON %s", rv.Type)
	}
}
