package dist

import "github.com/prometheus/client_golang/prometheus"

// Collector returns the senders' figures for /metrics, read from Status at
// scrape time (the numbers `imgctl dist status` prints).
func (m *Multicast) Collector() prometheus.Collector { return &mcollector{m: m} }

var (
	descMBytes = prometheus.NewDesc("imgctl_dist_multicast_sent_bytes_total", "UDP payload bytes the multicast carousel sent.",
		[]string{"transfer", "group"}, nil)
	descMPasses = prometheus.NewDesc("imgctl_dist_multicast_passes_total", "Full carousel passes over the root image.",
		[]string{"transfer", "group"}, nil)
	descMSending = prometheus.NewDesc("imgctl_dist_multicast_sending", "1 while the carousel runs.",
		[]string{"transfer", "group"}, nil)
	descMPieces = prometheus.NewDesc("imgctl_dist_multicast_pieces_received_total", "Pieces a receiver completed, by how: multicast or repair (HTTP).",
		[]string{"transfer", "node", "via"}, nil)
	descMRepair = prometheus.NewDesc("imgctl_dist_multicast_repair_bytes_total", "HTTP bytes a receiver's repairs took.",
		[]string{"transfer", "node"}, nil)
)

type mcollector struct{ m *Multicast }

func (c *mcollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMBytes, descMPasses, descMSending, descMPieces, descMRepair} {
		ch <- d
	}
}

func (c *mcollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.m.Status() {
		sending := 0.0
		if t.Sending {
			sending = 1
		}
		ch <- prometheus.MustNewConstMetric(descMBytes, prometheus.CounterValue, float64(t.BytesSent), t.Transfer, t.Group)
		ch <- prometheus.MustNewConstMetric(descMPasses, prometheus.CounterValue, float64(t.Passes), t.Transfer, t.Group)
		ch <- prometheus.MustNewConstMetric(descMSending, prometheus.GaugeValue, sending, t.Transfer, t.Group)
		for _, n := range t.Nodes {
			ch <- prometheus.MustNewConstMetric(descMPieces, prometheus.CounterValue, float64(n.Multicast), t.Transfer, n.Node, "multicast")
			ch <- prometheus.MustNewConstMetric(descMPieces, prometheus.CounterValue, float64(n.Repaired), t.Transfer, n.Node, "repair")
			ch <- prometheus.MustNewConstMetric(descMRepair, prometheus.CounterValue, float64(n.RepairBytes), t.Transfer, n.Node)
		}
	}
}
