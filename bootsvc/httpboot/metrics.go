package httpboot

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus figures.
type metrics struct {
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	kinds    *prometheus.CounterVec // artifact bytes by kind (kernel, initramfs, rootfs, overlay, manifest)
	refused  *prometheus.CounterVec // node-token refusals by node (names come from the inventory: bounded)
}

// stateLister lists node states (the server's Store).
type stateLister interface {
	States(ctx context.Context) ([]nodestate.Node, error)
}

func newMetrics(reg prometheus.Registerer, states stateLister) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgctl_http_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgctl_http_response_bytes_total", Help: "Response body bytes sent, by endpoint.",
		}, []string{"endpoint"}),
	}
	m.kinds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imgctl_http_artifact_bytes_total", Help: "Artifact bytes sent, by kind (kernel, initramfs, rootfs, overlay, manifest).",
	}, []string{"kind"})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imgctl_http_token_refusals_total", Help: "Requests for a node's own resources refused for a bad token or a foreign address, by node.",
	}, []string{"node"})
	nodes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imgctl_nodes_total", Help: "Nodes with a recorded boot state."},
		func() float64 { l, _ := states.States(context.Background()); return float64(len(l)) })
	byState := &stateCollector{states: states, desc: prometheus.NewDesc("imgctl_node_state_count", "Nodes whose last boot state is the label.", []string{"state"}, nil)}
	for _, c := range []prometheus.Collector{m.requests, m.bytes, m.kinds, m.refused, nodes, byState} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// stateCollector reports per-state node counts at scrape time.
type stateCollector struct {
	states stateLister
	desc   *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	list, err := c.states.States(context.Background())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	counts := map[nodestate.State]int{}
	for _, n := range list {
		counts[n.State]++
	}
	for _, st := range nodestate.States {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}

// endpoint names a request path for metric labels (bounded cardinality).
func endpoint(path string) string {
	switch {
	case path == "/ipxe":
		return "ipxe"
	case strings.HasPrefix(path, "/artifacts/"):
		return "artifacts"
	case strings.HasPrefix(path, "/nodes/"):
		return "overlay"
	case strings.HasPrefix(path, "/api/v1/admin/"):
		return "admin"
	case strings.HasPrefix(path, "/api/v1/nodes/"):
		return "state"
	case path == "/metrics":
		return "metrics"
	case path == "/ui" || strings.HasPrefix(path, "/ui/"):
		return "ui"
	}
	return "other"
}

type countingWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (the dashboard's
// event stream flushes through it).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom keeps sendfile for artifact downloads while counting bytes.
func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.bytes += n
	return n, err
}

func (m *metrics) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		ep := endpoint(r.URL.Path)
		code := cw.code
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(ep, strconv.Itoa(code)).Inc()
		m.bytes.WithLabelValues(ep).Add(float64(cw.bytes))
	})
}

// countKind wraps w so that what is written is counted as kind's bytes;
// call the returned func when the response is done.
func (m *metrics) countKind(w http.ResponseWriter, kind string) (http.ResponseWriter, func()) {
	cw := &countingWriter{ResponseWriter: w}
	return cw, func() { m.kinds.WithLabelValues(kind).Add(float64(cw.bytes)) }
}
