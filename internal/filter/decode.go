package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DecodeJSON decodes one JSON value for [Filter.Match], keeping numbers as
// json.Number so that they compare exactly. Anything but white space after
// the value is an error.
func DecodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode JSON: unexpected data after the value")
	}
	return v, nil
}

// maxParseDepth bounds the nesting ParseDocument follows; Compile's own
// limit (Options.MaxDepth) is far lower and gives the error users see.
const maxParseDepth = 100

// ParseDocument reads a filter document from its JSON text, for [Compile]:
// the text must be one JSON object, numbers are kept as json.Number so that
// they compare with every digit written, and a key repeated in one object is
// an error (the text would mean two filters at once). Errors are *Error
// values naming where the problem is.
func ParseDocument(text []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, &Error{Msg: "is not valid JSON: " + jsonErr(err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &Error{Msg: "must be a JSON object, as in {\"amount\": {\"$gte\": 10}}, got " + describeToken(tok)}
	}
	m, err := parseObject(dec, "", 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &Error{Msg: "has data after the JSON object"}
	}
	return m, nil
}

// parseObject reads the members of an object whose '{' was read, and its '}'.
func parseObject(dec *json.Decoder, path string, depth int) (map[string]any, error) {
	if depth > maxParseDepth {
		return nil, errorf(path, "nested deeper than %d levels", maxParseDepth)
	}
	m := map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errorf(path, "is not valid JSON: %s", jsonErr(err))
		}
		k, ok := tok.(string)
		if !ok {
			return nil, errorf(path, "is not valid JSON: object key %v is not a string", tok)
		}
		kpath := joinKey(path, k)
		if _, dup := m[k]; dup {
			return nil, errorf(kpath, "key appears twice in the same object")
		}
		v, err := parseValue(dec, kpath, depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, errorf(path, "is not valid JSON: %s", jsonErr(err))
	}
	return m, nil
}

// parseValue reads one value of the object or array at depth.
func parseValue(dec *json.Decoder, path string, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, errorf(path, "is not valid JSON: %s", jsonErr(err))
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		return parseObject(dec, path, depth+1)
	case '[':
		if depth+1 > maxParseDepth {
			return nil, errorf(path, "nested deeper than %d levels", maxParseDepth)
		}
		a := []any{}
		for i := 0; dec.More(); i++ {
			v, err := parseValue(dec, joinIndex(path, i), depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, errorf(path, "is not valid JSON: %s", jsonErr(err))
		}
		return a, nil
	}
	return nil, errorf(path, "is not valid JSON: unexpected %v", d)
}

// jsonErr is a decoding error without the package prefix.
func jsonErr(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of the text"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// describeToken names the kind of a JSON token for an error message.
func describeToken(tok any) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "an array"
		}
		return string(t)
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}
