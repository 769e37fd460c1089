package ui

import (
	"crypto/subtle"
	"html/template"
	"net"
	"net/http"
	"strings"
)

// CookieName is the cookie the login form sets; it holds the token itself,
// HttpOnly (no script reads it) and SameSite=Strict (no other site sends it).
const CookieName = "imgctl_ui"

// Role is who a token belongs to.
type Role string

// Roles.
const (
	Admin  Role = "admin"
	Viewer Role = "viewer"
)

// role returns whose token tok is.
func (s *Server) role(tok string) (Role, bool) {
	switch {
	case tok == "":
		return "", false
	case s.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) == 1:
		return Admin, true
	case s.cfg.ViewerToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.ViewerToken)) == 1:
		return Viewer, true
	}
	return "", false
}

// authorized checks the bearer header, then the cookie.
func (s *Server) authorized(r *http.Request) (Role, bool) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return s.role(tok)
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return s.role(c.Value)
	}
	return "", false
}

// viewer wraps h with the token check (admin or viewer).
func (s *Server) viewer(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.authorized(r); !ok {
			s.log.Warn("ui: refused", "path", r.URL.Path, "peer", peer(r))
			w.Header().Set("WWW-Authenticate", `Bearer realm="imgctl"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// maxLoginBody bounds the login form.
const maxLoginBody = 4 << 10

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		s.loginForm(w, http.StatusBadRequest, "bad form")
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	role, ok := s.role(tok)
	if !ok {
		s.log.Warn("ui: login refused", "peer", peer(r))
		s.loginForm(w, http.StatusUnauthorized, "That token is neither the admin nor the viewer token.")
		return
	}
	s.log.Info("ui: login", "role", role, "peer", peer(r))
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/ui", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/ui", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui", http.StatusSeeOther)
}

var loginTmpl = template.Must(template.ParseFS(static, "static/login.html"))

// loginForm answers with the login page and code (401 for "no token yet").
func (s *Server) loginForm(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("WWW-Authenticate", `Bearer realm="imgctl"`)
	w.WriteHeader(code)
	loginTmpl.Execute(w, struct{ Error string }{msg})
}

func peer(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
