package api

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's Prometheus metrics: requests by route and status,
// and the connections LimitConns keeps. A nil *Metrics records nothing.
type Metrics struct {
	Requests     *prometheus.HistogramVec // duration by route and status
	ConnsOpen    prometheus.Gauge
	ConnsEvicted prometheus.Counter
}

// NewMetrics makes the API's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sharesd_http_request_duration_seconds",
			Help:    "HTTP requests by route and status.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"route", "status"}),
		ConnsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sharesd_http_connections_open",
			Help: "HTTP connections open.",
		}),
		ConnsEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sharesd_http_connections_evicted_total",
			Help: "Idle HTTP connections closed to make room under -max-conns.",
		}),
	}
	reg.MustRegister(m.Requests, m.ConnsOpen, m.ConnsEvicted)
	return m
}

func (m *Metrics) observe(route string, status int, d time.Duration) {
	if m != nil {
		m.Requests.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
	}
}

func (m *Metrics) connOpened() {
	if m != nil {
		m.ConnsOpen.Inc()
	}
}

func (m *Metrics) connClosed() {
	if m != nil {
		m.ConnsOpen.Dec()
	}
}

func (m *Metrics) connEvicted() {
	if m != nil {
		m.ConnsEvicted.Inc()
	}
}
