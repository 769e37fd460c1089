package dist

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMarkGone: a failed source whose port refuses connections is gone at
// once, so its parent's slot goes to its orphan; one that still accepts
// (stalled, or busy) keeps its place.
func TestMarkGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String() + "/root"
	ln.Close() // nothing listens there now: refused
	live := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(live.Close)
	for _, tc := range []struct {
		name, url, want string
	}{
		{"refused: the orphan takes its parent's slot", deadURL, "p"},
		{"accepts: it keeps the slot, the orphan goes to the server", live.URL, ServerSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Config{}, nil, nil)
			join := func(node, url string, held int, failed ...string) Source {
				src, err := c.Join(JoinRequest{Transfer: "t", Pieces: 10, PieceSize: 4, Node: node, PeerURL: url, Held: held, Failed: failed})
				if err != nil {
					t.Fatal(err)
				}
				return src
			}
			join("p", live.URL, 0)   // from the server
			join("k", tc.url, 0)     // from p
			join("o", "http://o", 0) // from k
			a := NewAPI(c, nil, nil, nil)
			req := JoinRequest{Transfer: "t", Node: "o", Failed: []string{"k"}}
			a.markGone(context.Background(), req)
			if src := join("o", "http://o", 2, "k"); src.Peer != tc.want {
				t.Errorf("orphan's new source %q, want %q", src.Peer, tc.want)
			}
		})
	}
}
