package dist

import "github.com/prometheus/client_golang/prometheus"

// Collector returns the coordinator's figures for /metrics, read from Status
// at scrape time (the same numbers `imgctl dist status` prints).
func (c *Coordinator) Collector() prometheus.Collector { return &collector{c: c} }

var (
	descNodes = prometheus.NewDesc("imgctl_dist_nodes", "Nodes in a tree transfer, by whether they hold a verified copy.",
		[]string{"transfer", "done"}, nil)
	descHeld = prometheus.NewDesc("imgctl_dist_pieces_held", "Verified pieces a node holds.",
		[]string{"transfer", "node"}, nil)
	descFrom = prometheus.NewDesc("imgctl_dist_pieces_received_total", "Pieces a node received, by source (@server: the boot server).",
		[]string{"transfer", "node", "source"}, nil)
	descRate = prometheus.NewDesc("imgctl_dist_node_rate_bytes", "A node's mean receive rate since it joined, bytes per second.",
		[]string{"transfer", "node"}, nil)
	descBad = prometheus.NewDesc("imgctl_dist_bad_pieces_total", "Pieces that failed verification at a node, reported.",
		[]string{"transfer"}, nil)
)

type collector struct{ c *Coordinator }

func (col *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodes, descHeld, descFrom, descRate, descBad} {
		ch <- d
	}
}

func (col *collector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range col.c.Status() {
		done := 0
		for _, n := range t.Nodes {
			if n.Done {
				done++
			}
			ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(n.Held), t.Transfer, n.Node)
			ch <- prometheus.MustNewConstMetric(descRate, prometheus.GaugeValue, n.Rate, t.Transfer, n.Node)
			for src, k := range n.From {
				ch <- prometheus.MustNewConstMetric(descFrom, prometheus.CounterValue, float64(k), t.Transfer, n.Node, src)
			}
		}
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(done), t.Transfer, "true")
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(len(t.Nodes)-done), t.Transfer, "false")
		ch <- prometheus.MustNewConstMetric(descBad, prometheus.CounterValue, float64(t.BadPieces), t.Transfer)
	}
}
