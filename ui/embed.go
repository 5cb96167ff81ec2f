// Package ui is the dashboard: a TypeScript application (ui/src) built with
// Vite into ui/dist, which is committed and embedded here so that hookmesh
// serves it under /ui/ with no Node at build or run time. `make ui`
// rebuilds ui/dist.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// Prefix is where the dashboard is served.
const Prefix = "/ui/"

// Handler serves the dashboard under Prefix: the built files, and
// index.html for every other path so that the application's own routes
// (/ui/events/…) load on a reload or a shared link.
func Handler() http.Handler {
	files, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err)
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		panic("ui: dist/index.html is missing: run make ui")
	}
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean(r.URL.Path), strings.TrimSuffix(Prefix, "/"))
		name = strings.TrimPrefix(name, "/")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if name != "" && name != "index.html" && name != "source-hash" {
			if st, err := fs.Stat(files, name); err == nil && !st.IsDir() {
				// Vite names assets by their content's hash.
				if strings.HasPrefix(name, "assets/") {
					w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				}
				r2 := r.Clone(r.Context())
				r2.URL.Path = "/" + name
				fileServer.ServeHTTP(w, r2)
				return
			}
			if strings.HasPrefix(name, "assets/") {
				http.NotFound(w, r)
				return
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Frame-Options", "DENY")
		_, _ = w.Write(index)
	})
}

// Mount serves the dashboard on mux under Prefix, and redirects / and /ui
// to it.
func Mount(mux *http.ServeMux) {
	h := Handler()
	mux.Handle(Prefix, h)
	redirect := http.RedirectHandler(Prefix, http.StatusFound)
	mux.Handle("GET /ui", redirect)
	mux.Handle("GET /{$}", redirect)
}
