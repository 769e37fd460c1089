package httpboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// maxCloudInitBody bounds an admin cloud-init body.
const maxCloudInitBody = 1 << 20

// cloudInitAdminRoutes: the admin API for cloud-init records. {scope} is
// groups or nodes; ?secure=true addresses (or, for a preview, includes) the
// secure parts.
func (s *Server) cloudInitAdminRoutes(mux *http.ServeMux) {
	const base = "/api/v1/admin/cloud-init"
	mux.HandleFunc("GET "+base, s.admin(s.handleCloudInitList))
	mux.HandleFunc("POST "+base, s.admin(s.handleCloudInitPost)) // the OpenCHAMI tutorial's payload
	mux.HandleFunc("PUT "+base+"/{scope}/{name}", s.admin(s.handleCloudInitPut))
	mux.HandleFunc("GET "+base+"/{scope}/{name}", s.admin(s.handleCloudInitGet))
	mux.HandleFunc("DELETE "+base+"/{scope}/{name}", s.admin(s.handleCloudInitDelete))
	mux.HandleFunc("GET "+base+"/{scope}/{name}/{file}", s.admin(s.handleCloudInitPreview))
}

// adminKey reads {scope}/{name} and ?secure= into a key.
func adminKey(r *http.Request) (cloudinit.Key, error) {
	k := cloudinit.Key{Name: r.PathValue("name")}
	switch r.PathValue("scope") {
	case "groups":
		k.Scope = cloudinit.Group
	case "nodes":
		k.Scope = cloudinit.Node
	default:
		return k, fmt.Errorf("scope %q: want groups or nodes", r.PathValue("scope"))
	}
	if v := r.URL.Query().Get("secure"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return k, fmt.Errorf("secure=%q: want true or false", v)
		}
		k.Secure = b
	}
	return k, k.Validate()
}

// known checks that the key's group or node is in the inventory.
func (s *Server) known(r *http.Request, k cloudinit.Key) error {
	inv, err := s.deps.CloudInit.Snapshot(r.Context())
	if err != nil {
		return err
	}
	ok := false
	if k.Scope == cloudinit.Group {
		_, ok = inv.Group(k.Name)
	} else {
		_, ok = inv.Raw(k.Name)
	}
	if !ok {
		return fmt.Errorf("%s %s: %w in the inventory", k.Scope, k.Name, store.ErrNotFound)
	}
	return nil
}

func (s *Server) handleCloudInitList(w http.ResponseWriter, r *http.Request) {
	keys, err := s.deps.CloudInit.CloudInitKeys(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, keys)
}

// handleCloudInitPost stores {name, cloud-init: {...}} for the group of
// that name, or else the node.
func (s *Server) handleCloudInitPost(w http.ResponseWriter, r *http.Request) {
	name, d, ok := readCloudInit(w, r)
	if !ok {
		return
	}
	if name == "" {
		http.Error(w, "body: no name (want {name, cloud-init: {userdata, metadata, vendordata}})", http.StatusBadRequest)
		return
	}
	secure, _ := strconv.ParseBool(r.URL.Query().Get("secure"))
	k := cloudinit.Key{Scope: cloudinit.Group, Name: name, Secure: secure}
	if s.known(r, k) != nil {
		k.Scope = cloudinit.Node
	}
	s.putCloudInit(w, r, k, d)
}

func (s *Server) handleCloudInitPut(w http.ResponseWriter, r *http.Request) {
	k, err := adminKey(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, d, ok := readCloudInit(w, r); ok {
		s.putCloudInit(w, r, k, d)
	}
}

// readCloudInit reads and validates a body in any form cloudinit.Parse
// takes, answering 400 itself when it is bad.
func readCloudInit(w http.ResponseWriter, r *http.Request) (string, cloudinit.Data, bool) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxCloudInitBody))
	if err == nil {
		var name string
		var d cloudinit.Data
		if name, d, err = cloudinit.Parse("body", b); err == nil {
			return name, d, true
		}
	}
	http.Error(w, err.Error(), http.StatusBadRequest)
	return "", cloudinit.Data{}, false
}

func (s *Server) putCloudInit(w http.ResponseWriter, r *http.Request, k cloudinit.Key, d cloudinit.Data) {
	if err := s.known(r, k); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err := s.deps.CloudInit.PutCloudInit(r.Context(), k, d); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.log.Info("admin: cloud-init stored", "scope", k.Scope, "name", k.Name, "secure", k.Secure, "files", d.Files())
	writeJSON(w, http.StatusOK, k)
}

func (s *Server) handleCloudInitGet(w http.ResponseWriter, r *http.Request) {
	k, err := adminKey(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d, err := s.deps.CloudInit.CloudInit(r.Context(), k)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if d.IsZero() {
		http.Error(w, "no cloud-init data for "+k.String(), http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) handleCloudInitDelete(w http.ResponseWriter, r *http.Request) {
	k, err := adminKey(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	err = s.deps.CloudInit.DeleteCloudInit(r.Context(), k)
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		s.log.Info("admin: cloud-init removed", "scope", k.Scope, "name", k.Name, "secure", k.Secure)
		w.WriteHeader(http.StatusNoContent)
	}
}

// handleCloudInitPreview renders a file as a node would get it (for a
// node: its groups and itself, public parts unless ?secure=true), or a
// group's own data alone.
func (s *Server) handleCloudInitPreview(w http.ResponseWriter, r *http.Request) {
	k, err := adminKey(r)
	file := r.PathValue("file")
	if err == nil && !cloudinit.IsFile(file) {
		err = fmt.Errorf("file %q: want meta-data, user-data, vendor-data or network-config", file)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.known(r, k); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	t := cloudinit.Target{Group: k.Name, Secure: k.Secure}
	if k.Scope == cloudinit.Node {
		n, err := s.deps.Store.Node(r.Context(), k.Name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		t.Node = &n
	}
	files, err := s.renderCloudInit(r.Context(), t)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	body, ok := files[file]
	if !ok {
		http.Error(w, file+" not set for "+k.String(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
