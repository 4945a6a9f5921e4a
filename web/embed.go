// Package web serves Herald's dashboard: the Vite + Preact app in this
// folder, built into dist/ (bash scripts/web.sh) and embedded in the
// binary. It talks only to Herald's public GraphQL API. A binary built
// without running the web build serves a page that says how to build it.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// dist holds the built app; the repository keeps only dist/.gitkeep, so a
// plain go build works before the web build has run.
//
//go:embed all:dist
var dist embed.FS

// Built reports whether the embedded app was built (dist/index.html).
func Built() bool {
	_, err := fs.Stat(dist, "dist/index.html")
	return err == nil
}

// notBuilt is the page served when the app was not built.
const notBuilt = `<!doctype html><title>Herald</title><p>The dashboard was not built into this binary: run <code>bash scripts/web.sh</code> (or scripts/dev.sh) and build Herald again. The GraphQL API is at <code>/graphql</code>.</p>`

// Routes are the app's pages; each serves index.html, and the app reads
// the path and query.
var Routes = []string{"/{$}", "/campaigns/", "/deliveries", "/deliveries/", "/messages", "/messages/", "/broadcast", "/broadcasts/"}

// Handler serves the app: its assets under /assets/ (immutable, hashed
// names) and index.html for its pages.
func Handler() http.Handler {
	sub, _ := fs.Sub(dist, "dist")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(r.URL.Path, "/assets/") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			files.ServeHTTP(w, r)
			return
		}
		index, err := fs.ReadFile(sub, "index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(notBuilt))
			return
		}
		_, _ = w.Write(index)
	})
}
