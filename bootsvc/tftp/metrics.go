package tftp

import "github.com/prometheus/client_golang/prometheus"

// metrics count transfers by result and the file bytes sent.
type metrics struct {
	transfers *prometheus.CounterVec
	bytes     prometheus.Counter
}

// newMetrics registers the figures with reg; nil reg counts privately.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgctl_tftp_transfers_total", Help: "TFTP read transfers finished, by result (ok, failed).",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imgctl_tftp_bytes_total", Help: "File bytes handed to TFTP transfers.",
		}),
	}
	m.transfers.WithLabelValues("ok")
	m.transfers.WithLabelValues("failed")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.transfers, m.bytes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) transferred(err error) {
	if err != nil {
		m.transfers.WithLabelValues("failed").Inc()
		return
	}
	m.transfers.WithLabelValues("ok").Inc()
}
