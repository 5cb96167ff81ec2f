package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
)

// FuzzParseRESTBody feeds arbitrary bodies to the REST parser: it never
// panics, refuses with InvalidArgument, and when it accepts a body whose
// data it then validates, data is exactly a JSON value found in the body.
func FuzzParseRESTBody(f *testing.F) {
	for _, seed := range []string{
		`{"endpoint_id":"ep_1","event_type":"a.b","data":{"x":12345678901234567890},"custom_headers":{"X-A":"1"},"idempotency_key":"k"}`,
		`{"owner_id":"o","event_type":"t","data":[1,2,3]}`,
		`{"event_type":"t","data":"s"}  `,
		`{"data":null}`, `{`, `[]`, `{"data":{"a":`, `{} {}`, `{"custom_headers":{"X":5}}`, `{"ordering_key":5}`, `{"event_type":"t","data":{},"ordering_key":"k"}`, "{\"data\":\"\\u0000\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, shape := range []restShape{shapeSingle, shapeFanout, shapeBroadcast} {
			req, err := parseRESTBody(shape, body)
			if err != nil {
				if connect.CodeOf(err) != connect.CodeInvalidArgument {
					t.Fatalf("error %v is not InvalidArgument", err)
				}
				continue
			}
			if len(req.Data) > 0 {
				if !json.Valid(req.Data) {
					t.Fatalf("data %q is not JSON", req.Data)
				}
				if !bytes.Contains(body, bytes.TrimSpace(req.Data)) {
					t.Fatalf("data %q is not the bytes sent", req.Data)
				}
			}
		}
	})
}

// FuzzValidateHeaders feeds arbitrary custom headers to the validation:
// it never panics, and what it accepts is safe on the wire: it writes as
// exactly one header line each, and overrides nothing hookmesh sets.
func FuzzValidateHeaders(f *testing.F) {
	f.Add("X-Tenant", "a")
	f.Add("X-A", "a\r\nX-B: b")
	f.Add("Host", "evil")
	f.Add("webhook-signature", "v1,x")
	f.Add("X A", "v")
	f.Add("X-A", "\x00")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, name, value string) {
		if err := validateHeaders(map[string]string{name: value}); err != nil {
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
			return
		}
		lower := strings.ToLower(name)
		if reservedHeaders[lower] || strings.HasPrefix(lower, "webhook-") || strings.HasPrefix(lower, "x-hookmesh-") {
			t.Fatalf("accepted reserved header %q", name)
		}
		var buf bytes.Buffer
		h := http.Header{}
		h.Set(name, value)
		if err := h.Write(&buf); err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(buf.String(), "\r\n"); lines != 1 {
			t.Fatalf("header %q: %q wrote %d lines", name, value, lines)
		}
	})
}
