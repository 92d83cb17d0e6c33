// Package web embeds the pages streamd serves: the player (/watch), the
// browser publisher (/publish), the staff console (/console), the showroom
// visitor page (/visit) and /embed.js. Plain HTML and ES modules, no build step.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static pages
var files embed.FS

// Register mounts the pages and /static/.
func Register(mux *http.ServeMux) {
	static, _ := fs.Sub(files, "static")
	fileServer := http.StripPrefix("/static/", http.FileServer(http.FS(static)))
	mux.Handle("GET /static/", noCacheJS(fileServer))
	page := Page
	mux.HandleFunc("GET /watch/{stream}", page("watch.html"))
	mux.HandleFunc("GET /publish/{stream}", page("publish.html"))
	mux.HandleFunc("GET /console/{stream}", page("console.html"))
	mux.HandleFunc("GET /visit/{showroom}", page("visit.html"))
	mux.HandleFunc("GET /{$}", page("index.html"))
	mux.HandleFunc("GET /embed.js", func(w http.ResponseWriter, r *http.Request) {
		b, _ := files.ReadFile("static/embed.js")
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(b)
	})
}

// Page serves one embedded page (for packages that mount their own routes).
func Page(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := files.ReadFile("pages/" + name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}
}

func noCacheJS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
