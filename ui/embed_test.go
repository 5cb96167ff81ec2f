package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

// The built files are served, every other path under /ui/ gets index.html
// (the application's own routes), and / and /ui lead to /ui/.
func TestServesTheBuiltDashboard(t *testing.T) {
	mux := http.NewServeMux()
	Mount(mux)

	index := get(t, mux, "/ui/")
	body, _ := io.ReadAll(index.Body)
	if index.StatusCode != http.StatusOK || !strings.Contains(string(body), `<div id="root">`) {
		t.Fatalf("/ui/: %d %s", index.StatusCode, body)
	}
	for _, route := range []string{"/ui/events", "/ui/events/evt_123", "/ui/endpoints/ep_1"} {
		resp := get(t, mux, route)
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(got) != string(body) {
			t.Fatalf("%s: %d, not index.html", route, resp.StatusCode)
		}
	}

	assets, err := fs.Glob(dist, "dist/assets/*.js")
	if err != nil || len(assets) == 0 {
		t.Fatalf("no built script in dist/assets: %v", err)
	}
	name := strings.TrimPrefix(assets[0], "dist/")
	if !strings.Contains(string(body), "/ui/"+name) {
		t.Fatalf("index.html does not load %s", name)
	}
	js := get(t, mux, "/ui/"+name)
	if js.StatusCode != http.StatusOK || !strings.Contains(js.Header.Get("Content-Type"), "javascript") ||
		!strings.Contains(js.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("%s: %d %v", name, js.StatusCode, js.Header)
	}
	if resp := get(t, mux, "/ui/assets/missing.js"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a missing asset: %d", resp.StatusCode)
	}
	for _, path := range []string{"/", "/ui"} {
		if resp := get(t, mux, path); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
			t.Fatalf("%s: %d to %q", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}
