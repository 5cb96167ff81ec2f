package registry

import (
	"strings"
	"testing"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url string
		msg string // "" for valid
	}{
		{"https://example.com/hooks?a=b", ""},
		{"http://127.0.0.1:8080/x", ""},
		{"HTTPS://EXAMPLE.COM", ""},
		{"http://[::1]:9000/", ""},
		{"", "url: must not be empty"},
		{"foo", `url: must be an absolute http or https URL, got "foo"`},
		{"/relative/path", "url: must be an absolute http or https URL"},
		{"ftp://example.com", "url: must be an absolute http or https URL"},
		{"http://", "url: must be an absolute http or https URL"},
		{"http:example.com", "url: must be an absolute http or https URL"},
		{"https://:443/", "url: must be an absolute http or https URL"},
		{"https://example.com:99999/", "url: port must be between 1 and 65535"},
		{"https://user:secret@example.com/", "url: must not contain user information"},
		{"ftp://user:secret@example.com/", `got "ftp://user:xxxxx@example.com/"`},
		{"https://example.com/\n", "url: must be an absolute http or https URL"},
		{"https://example.com/" + strings.Repeat("a", 2048), "url: must be at most 2048 bytes"},
	}
	for _, tt := range tests {
		err := checkURL("url", tt.url)
		if tt.msg == "" {
			if err != nil {
				t.Errorf("checkURL(%q) = %v, want nil", tt.url, err)
			}
			continue
		}
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("checkURL(%q) = %v, want InvalidArgument containing %q", tt.url, err, tt.msg)
		}
		if strings.Contains(tt.url, "secret") && strings.Contains(err.Error(), "secret") {
			t.Errorf("checkURL(%q) echoes the password: %v", tt.url, err)
		}
	}
}

func TestCheckCustomHeaders(t *testing.T) {
	t.Parallel()
	long := make(map[string]string)
	for i := range 51 {
		long["X-H"+strings.Repeat("a", i)] = "v"
	}
	tests := []struct {
		name    string
		headers map[string]string
		msg     string
	}{
		{"valid", map[string]string{"X-Tenant": "t1", "Authorization": "Bearer x", "X-Tab": "a\tb"}, ""},
		{"none", nil, ""},
		{"too many", long, "custom_headers: must have at most 50 headers, got 51"},
		{"space in name", map[string]string{"X Tenant": "t"}, `custom_headers["X Tenant"]: is not a valid HTTP header name`},
		{"colon in name", map[string]string{"X-A:": "t"}, `custom_headers["X-A:"]`},
		{"empty name", map[string]string{"": "t"}, `custom_headers[""]`},
		{"host", map[string]string{"host": "t"}, `custom_headers["host"]: is set by hookmesh`},
		{"content-length", map[string]string{"Content-Length": "1"}, `custom_headers["Content-Length"]`},
		{"transfer-encoding", map[string]string{"Transfer-Encoding": "chunked"}, `custom_headers["Transfer-Encoding"]`},
		{"connection", map[string]string{"Connection": "close"}, `custom_headers["Connection"]`},
		{"upgrade", map[string]string{"Upgrade": "h2c"}, `custom_headers["Upgrade"]`},
		{"te", map[string]string{"TE": "trailers"}, `custom_headers["TE"]`},
		{"trailer", map[string]string{"Trailer": "x"}, `custom_headers["Trailer"]`},
		{"keep-alive", map[string]string{"Keep-Alive": "x"}, `custom_headers["Keep-Alive"]`},
		{"proxy", map[string]string{"Proxy-Connection": "x"}, `custom_headers["Proxy-Connection"]`},
		{"standard webhooks", map[string]string{"Webhook-Id": "x"}, `custom_headers["Webhook-Id"]`},
		{"hookmesh", map[string]string{"X-HOOKMESH-ATTEMPT": "x"}, `custom_headers["X-HOOKMESH-ATTEMPT"]`},
		{"signature header", map[string]string{"x-acme-signature": "x"}, `custom_headers["x-acme-signature"]: is the project's signature header`},
		{"duplicate", map[string]string{"X-A": "1", "x-a": "2"}, `repeats "X-A"`},
		{"CR", map[string]string{"X-A": "a\rb"}, `custom_headers["X-A"]: value must not contain CR, LF, NUL`},
		{"LF", map[string]string{"X-A": "a\nb"}, `custom_headers["X-A"]: value`},
		{"NUL", map[string]string{"X-A": "a\x00b"}, `custom_headers["X-A"]: value`},
	}
	for _, tt := range tests {
		got, err := checkCustomHeaders(tt.headers, "X-Acme-Signature")
		if tt.msg == "" {
			if err != nil || len(got) != len(tt.headers) {
				t.Errorf("%s: got %v, %v", tt.name, got, err)
			}
			continue
		}
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want InvalidArgument containing %q", tt.name, err, tt.msg)
		}
	}
}

func TestValidEventTypePattern(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"*": true, "invoice.paid": true, "invoice.*": true, "a.b.*": true, "user_created": true,
		"com.acme/v1:order-placed": true, "Invoice.Paid": true, "a.b.c.d": true,
		"": false, ".*": false, "inv*": false, "*.created": false, "a.*.b": false, "**": false,
		"invoice paid": false, "invoice.paid\n": false, "inv%": false, "é": false, "a.*.*": false,
	}
	for pattern, want := range tests {
		if got := validEventTypePattern(pattern); got != want {
			t.Errorf("validEventTypePattern(%q) = %v, want %v", pattern, got, want)
		}
	}
}

func TestCheckRetryPolicy(t *testing.T) {
	t.Parallel()
	d, err := checkRetryPolicy("retry_policy", nil)
	if err != nil || d != (retryDoc{Strategy: strategyExponential, IntervalSeconds: 10, MaxAttempts: 10}) {
		t.Fatalf("defaults = %v, %v", d, err)
	}
	for _, tt := range []struct {
		name string
		call func() error
		msg  string
	}{
		{"bad strategy", func() error {
			_, err := checkRetryPolicy("retry_policy", &registryv1.RetryPolicy{Strategy: 9})
			return err
		}, "retry_policy.strategy"},
		{"interval", func() error {
			_, err := checkRetryPolicy("retry_policy", &registryv1.RetryPolicy{IntervalSeconds: 86401})
			return err
		}, "retry_policy.interval_seconds: must be between 1 and 86400, got 86401"},
		{"attempts", func() error {
			_, err := checkRetryPolicy("retry_policy", &registryv1.RetryPolicy{MaxAttempts: 101})
			return err
		}, "retry_policy.max_attempts: must be between 1 and 100, got 101"},
	} {
		if err := tt.call(); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.msg)
		}
	}
}

func TestPageToken(t *testing.T) {
	t.Parallel()
	id := "ep_01hx0000000000000000000000"
	got, err := decodePageToken(encodePageToken(id))
	if err != nil || got != id {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	for _, bad := range []string{"!!", encodePageToken("not an id"), encodePageToken(`{"$gt":""}`)} {
		if _, err := decodePageToken(bad); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("decodePageToken(%q) = %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := pageSize(501); err == nil {
		t.Error("pageSize(501) accepted")
	}
	if n, _ := pageSize(0); n != 50 {
		t.Errorf("default page size %d", n)
	}
}
