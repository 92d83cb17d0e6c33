// Package web embeds the pages streamd serves: the player (/watch), the
// browser publisher (/publish), the staff console (/console), the showroom
// visitor page (/visit) and /embed.js. Plain HTML and ES modules, no build step.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// The demo catalog's photos are drawn by scripts/demoimages and committed.
//go:generate go run ../scripts/demoimages -out static/demo

//go:embed static pages
var files embed.FS

// Register mounts the pages and /static/.
func Register(mux *http.ServeMux) {
	static, _ := fs.Sub(files, "static")
	fileServer := http.StripPrefix("/static/", http.FileServer(http.FS(static)))
	mux.Handle("GET /static/", noCache(fileServer))
	mux.HandleFunc("GET /watch/{stream}", page("watch.html"))
	mux.HandleFunc("GET /publish/{stream}", page("publish.html"))
	mux.HandleFunc("GET /console/{stream}", page("console.html"))
	mux.HandleFunc("GET /console/{stream}/orders", page("orders.html"))
	mux.HandleFunc("GET /order/{id}", page("order.html"))
	mux.HandleFunc("GET /console/{stream}/products", page("products.html"))
	mux.HandleFunc("GET /visit/{showroom}", page("visit.html"))
	mux.HandleFunc("GET /replay/{stream}/{show}", page("replay.html"))
	mux.HandleFunc("GET /{$}", page("index.html"))
	mux.HandleFunc("GET /embed.js", file("static/embed.js", "text/javascript; charset=utf-8", ""))
}

// page serves one embedded page.
func page(name string) http.HandlerFunc {
	return file("pages/"+name, "text/html; charset=utf-8", "no-cache")
}

// file serves one embedded file, read once (embed.FS.ReadFile copies on
// every call); a missing file is a 404. cacheControl "" sets no header.
func file(name, contentType, cacheControl string) http.HandlerFunc {
	b, err := files.ReadFile(name)
	if err != nil {
		return http.NotFound
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		_, _ = w.Write(b)
	}
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
