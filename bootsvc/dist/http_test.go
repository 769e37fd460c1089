package dist

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store"
)

type nodeMap map[string]inventory.Node

func (m nodeMap) Node(_ context.Context, name string) (inventory.Node, error) {
	n, ok := m[name]
	if !ok {
		return n, fmt.Errorf("node %s: %w", name, store.ErrNotFound)
	}
	return n, nil
}

// TestAPI: the token is checked, the peer URL is the request's own address
// with the node's port, and the topology comes from the inventory.
func TestAPI(t *testing.T) {
	tokens := nodetoken.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	nodes := nodeMap{
		"a": {Name: "a", MACs: []string{"02:00:00:00:00:01"}, Settings: inventory.Settings{Rack: "r1"}},
		"b": {Name: "b", MACs: []string{"02:00:00:00:00:02"}, Settings: inventory.Settings{Rack: "r1"}},
		"c": {Name: "c", MACs: []string{"02:00:00:00:00:03"}, Settings: inventory.Settings{Rack: "r2"}},
	}
	c := New(Config{}, nil, nil)
	srv := httptest.NewServer(NewAPI(c, nodes, tokens, nil).Handler())
	t.Cleanup(srv.Close)
	post := func(path, token string, body any) (*http.Response, []byte) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL+Prefix+path+"?token="+token, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		return resp, out.Bytes()
	}
	tok := func(n, mac string) string { return tokens.Make(n, mac, "127.0.0.1") }
	join := map[string]any{"transfer": "img", "pieces": 3, "piece_size": 4, "node": "a", "peer_port": 7000}
	for _, tc := range []struct {
		name, token string
		body        map[string]any
		code        int
	}{
		{"no token", "", join, http.StatusForbidden},
		{"another node's token", tok("b", "02:00:00:00:00:02"), join, http.StatusForbidden},
		{"unknown node", tok("z", "02:00:00:00:00:09"), map[string]any{"transfer": "img", "pieces": 3, "piece_size": 4, "node": "z"}, http.StatusNotFound},
		{"unknown field", tok("a", "02:00:00:00:00:01"), map[string]any{"node": "a", "peer_url": "http://evil/"}, http.StatusBadRequest},
		{"good", tok("a", "02:00:00:00:00:01"), join, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp, body := post("join", tc.token, tc.body); resp.StatusCode != tc.code {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, body, tc.code)
			}
		})
	}
	resp, body := post("join", tok("b", "02:00:00:00:00:02"), map[string]any{"transfer": "img", "pieces": 3, "piece_size": 4, "node": "b", "peer_port": 7001})
	var src Source
	if err := json.Unmarshal(body, &src); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("join b: %d %s", resp.StatusCode, body)
	}
	if src.Peer != "a" || src.URL != "http://127.0.0.1:7000/root" {
		t.Errorf("b's source = %+v, want a at http://127.0.0.1:7000/root", src)
	}
	if resp, body := post("progress", tok("b", "02:00:00:00:00:02"), Progress{Transfer: "img", Node: "b", Held: 3, Done: true, From: map[string]int{"a": 3}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("progress: %d %s", resp.StatusCode, body)
	}
	// c was fetching from a when the coordinator forgot it: it keeps a.
	resp, body = post("resume", tok("c", "02:00:00:00:00:03"), map[string]any{"transfer": "img", "pieces": 3, "piece_size": 4, "node": "c", "held": 1, "peer_port": 7002, "current": "a"})
	if err := json.Unmarshal(body, &src); err != nil || resp.StatusCode != http.StatusOK || src.Peer != "a" {
		t.Errorf("resume c: %d %s, want source a", resp.StatusCode, body)
	}
	get, err := http.Get(srv.URL + Prefix + "status")
	if err != nil {
		t.Fatal(err)
	}
	defer get.Body.Close()
	var st []TransferStatus
	if err := json.NewDecoder(get.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || len(st[0].Nodes) != 3 || st[0].Nodes[1].From["a"] != 3 || st[0].Nodes[2].Source != "a" {
		t.Errorf("status = %+v", st)
	}
}

// FuzzAPI: whatever a node posts, the coordinator answers without panicking
// and its status stays readable.
func FuzzAPI(f *testing.F) {
	for _, seed := range []string{
		`{"transfer":"img","pieces":3,"piece_size":4,"node":"a","peer_port":7000}`,
		`{"transfer":"img","pieces":3,"piece_size":4,"node":"a","held":9,"failed":["b"],"bad":[{"peer":"a","piece":-1}]}`,
		`{"transfer":"img","node":"a","held":-3,"from":{"@server":-1},"done":true}`,
		`{`, `[]`, `{"node":"@server","pieces":1,"piece_size":1,"transfer":"x"}`,
	} {
		f.Add("join", seed)
		f.Add("progress", seed)
		f.Add("leave", seed)
		f.Add("resume", seed)
	}
	f.Add("resume", `{"transfer":"img","pieces":3,"piece_size":4,"node":"c","held":1,"peer_port":7002,"current":"c"}`)
	c := New(Config{}, nil, nil)
	h := NewAPI(c, anyNode{}, nil, nil).Handler()
	f.Fuzz(func(t *testing.T, path, body string) {
		if _, err := url.ParseRequestURI(Prefix + path); err != nil || strings.ContainsAny(path, " \t\r\n") {
			t.Skip("not a request line httptest can build") // the server never sees one
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Prefix+path, bytes.NewReader([]byte(body))))
		if rec.Code == 0 {
			t.Fatal("no answer")
		}
		c.Status()
	})
}

type anyNode struct{}

func (anyNode) Node(_ context.Context, name string) (inventory.Node, error) {
	return inventory.Node{Name: name}, nil
}
