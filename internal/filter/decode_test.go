package filter

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseDocumentKeepsEveryDigit(t *testing.T) {
	t.Parallel()
	doc, err := ParseDocument([]byte(`{"amount": 12345678901234567890, "list": [1.50, {"x": -0}], "s": "t"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := doc["amount"].(json.Number); !ok || n.String() != "12345678901234567890" {
		t.Fatalf("amount = %#v, want the json.Number 12345678901234567890", doc["amount"])
	}
	f, err := Compile(doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]bool{
		`{"amount": 12345678901234567890, "list": [1.5, {"x": 0}], "s": "t"}`: true,
		`{"amount": 12345678901234567891, "list": [1.5, {"x": 0}], "s": "t"}`: false,
		`{"amount": 12345678901234567000, "list": [1.5, {"x": 0}], "s": "t"}`: false,
	} {
		v, err := DecodeJSON([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Match(v); got != want {
			t.Errorf("Match(%s) = %v, want %v", body, got, want)
		}
	}
}

func TestParseDocumentRefuses(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]string{
		``:                             "is not valid JSON",
		`[1]`:                          "must be a JSON object, as in",
		`"x"`:                          "must be a JSON object",
		`{"a": 1} {"b": 2}`:            "has data after the JSON object",
		`{"a": 1`:                      "is not valid JSON",
		`{"a": {"b": 1, "b": 2}}`:      "a.b: key appears twice in the same object",
		`{"a": [1, {"c": 1, "c": 1}]}`: "a[1].c: key appears twice",
		`{"a": tru}`:                   "is not valid JSON",
		`{"a": 1,}`:                    "is not valid JSON",
		`{"a": ` + strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200) + `}`: "nested deeper than 100 levels",
	} {
		_, err := ParseDocument([]byte(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDocument(%.40q) = %v, want an error containing %q", text, err, want)
		}
	}
}
