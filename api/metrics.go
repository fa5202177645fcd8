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
	// Lists counts list answers (200 and 304) by source: "memory" (a kept
	// body, no Redis round trip) or "redis".
	Lists                   *prometheus.CounterVec
	listsMemory, listsRedis prometheus.Counter
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
		Lists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sharesd_api_list_answers_total",
			Help: "List answers (200 and 304) by source: memory (a kept body confirmed by the announcements) or redis.",
		}, []string{"source"}),
	}
	m.listsMemory, m.listsRedis = m.Lists.WithLabelValues("memory"), m.Lists.WithLabelValues("redis")
	reg.MustRegister(m.Requests, m.ConnsOpen, m.ConnsEvicted, m.Lists)
	return m
}

// listed counts a list answer from memory or from Redis.
func (m *Metrics) listed(fromMemory bool) {
	switch {
	case m == nil:
	case fromMemory:
		m.listsMemory.Inc()
	default:
		m.listsRedis.Inc()
	}
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
