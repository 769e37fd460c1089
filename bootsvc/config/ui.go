package config

import "errors"

// validateViewer checks http.viewer_token: long enough to guess badly, and
// not the admin token (which would make the two roles one).
func (h HTTP) validateViewer() error {
	if h.ViewerToken == "" {
		return nil
	}
	var errs []error
	if len(h.ViewerToken) < 16 {
		errs = append(errs, errors.New("http.viewer_token: shorter than 16 characters"))
	}
	if h.ViewerToken == h.AdminToken {
		errs = append(errs, errors.New("http.viewer_token: the same as http.admin_token (give viewers their own token)"))
	}
	return errors.Join(errs...)
}

// UIEnabled reports whether the dashboard is served: the HTTP server runs
// and some token lets people in.
func (c Config) UIEnabled() bool {
	return c.HTTP.Enabled && (c.HTTP.AdminToken != "" || c.HTTP.ViewerToken != "")
}
