package integration

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hookmesh/hookmesh/app"
	"github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1/registryv1connect"
)

// A browser on an allowed origin may call Connect JSON, gRPC-Web and REST
// routes; one on another origin gets no CORS headers, so its browser refuses
// the answer.
func TestCORS(t *testing.T) {
	const allowed, other = "http://dashboard.example:5173", "http://evil.example"
	s := startStack(t, modeAll, stackOptions{configure: func(c *app.Config) {
		c.CORSAllowedOrigins = []string{allowed}
	}})
	listProjects := s.registryURL + registryv1connect.RegistryServiceListProjectsProcedure

	preflight := func(t *testing.T, url, origin, headers string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, url, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		// As browsers send it: lower-case, sorted.
		req.Header.Set("Access-Control-Request-Headers", headers)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	call := func(t *testing.T, origin, contentType string, body []byte, extra map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, listProjects, bytes.NewReader(body))
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}
	hasAll := func(list string, want ...string) bool {
		got := map[string]bool{}
		for _, h := range strings.Split(list, ",") {
			got[strings.ToLower(strings.TrimSpace(h))] = true
		}
		for _, w := range want {
			if !got[strings.ToLower(w)] {
				return false
			}
		}
		return true
	}

	t.Run("connect json", func(t *testing.T) {
		resp := preflight(t, listProjects, allowed, "authorization,connect-protocol-version,content-type")
		if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") != allowed {
			t.Fatalf("preflight: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		if h := resp.Header.Get("Access-Control-Allow-Headers"); !hasAll(h, "content-type", "connect-protocol-version", "authorization") {
			t.Fatalf("preflight allows headers %q", h)
		}
		resp = call(t, allowed, "application/json", []byte(`{}`), map[string]string{"Connect-Protocol-Version": "1"})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != allowed {
			t.Fatalf("call: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("grpc-web", func(t *testing.T) {
		resp := preflight(t, listProjects, allowed, "authorization,content-type,x-grpc-web,x-user-agent")
		if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") != allowed {
			t.Fatalf("preflight: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		// One empty ListProjectsRequest in a gRPC-Web frame.
		frame := make([]byte, 5)
		binary.BigEndian.PutUint32(frame[1:], 0)
		resp = call(t, allowed, "application/grpc-web+proto", frame, map[string]string{"X-Grpc-Web": "1"})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != allowed {
			t.Fatalf("call: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		if h := resp.Header.Get("Access-Control-Expose-Headers"); !hasAll(h, "grpc-status", "grpc-message") {
			t.Fatalf("exposed headers %q lack grpc-status and grpc-message", h)
		}
	})

	t.Run("rest", func(t *testing.T) {
		resp := preflight(t, s.ingestURL+"/api/v1/projects/p/events", allowed, "authorization,content-type")
		if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") != allowed {
			t.Fatalf("preflight: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("other origin", func(t *testing.T) {
		resp := preflight(t, listProjects, other, "authorization,connect-protocol-version,content-type")
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Fatalf("preflight from %s: Access-Control-Allow-Origin %q", other, got)
		}
		resp = call(t, other, "application/json", []byte(`{}`), map[string]string{"Connect-Protocol-Version": "1"})
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Fatalf("call from %s: Access-Control-Allow-Origin %q", other, got)
		}
	})
}
