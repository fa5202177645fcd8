package projector

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the projector's Prometheus metrics. Construct them with
// NewMetrics on the registry of the process; nothing is registered globally.
type Metrics struct {
	Applied        *prometheus.CounterVec // by event type and outcome
	DeadLettered   *prometheus.CounterVec // by reason
	Redeliveries   prometheus.Counter
	LagEvents      prometheus.Gauge
	LagSeconds     prometheus.Gauge
	Position       prometheus.Gauge
	StreamHead     prometheus.Gauge
	BatchSeconds   prometheus.Histogram
	BatchSize      prometheus.Histogram
	RedisErrors    prometheus.Counter
	NATSErrors     prometheus.Counter
	RebuildDone    prometheus.Gauge
	RebuildTotal   prometheus.Gauge
	Rebuilding     prometheus.Gauge
	SelfHeals      prometheus.Counter
	LastAppliedAge prometheus.Gauge

	// DeadLetterFailed counts bad events the dead-letter stream refused
	// even as a headers-only copy, by refusal (recorded and passed over).
	DeadLetterFailed *prometheus.CounterVec
}

// NewMetrics creates the projector's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sharesd_events_applied_total",
			Help: "Events processed by the projector, by event type and outcome (applied, stale, duplicate, project_mismatch, render_deleted).",
		}, []string{"type", "outcome"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sharesd_events_deadlettered_total",
			Help: "Events copied to the dead-letter stream, by reason.",
		}, []string{"reason"}),
		DeadLetterFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sharesd_events_deadletter_failed_total",
			Help: "Bad events the dead-letter stream refused even as a headers-only copy, recorded in the SHARESD_DEADLETTER bucket and passed over, by refusal (too_large, header, subject, stream_full, sealed, refused), or held events gone from the stream before their render was registered (gone_from_stream).",
		}, []string{"reason"}),
		Redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sharesd_redeliveries_total",
			Help: "Events delivered again after they had been applied (skipped by the sequence guard).",
		}),
		LagEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sharesd_projection_lag_events",
			Help: "Events in the stream not yet applied to the active generation.",
		}),
		LagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sharesd_projection_lag_seconds",
			Help: "Age of the last applied event when it was applied (stream time to apply time), or 0 when caught up.",
		}),
		Position: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sharesd_projection_position",
			Help: "Stream sequence up to which the projector has applied every event.",
		}),
		StreamHead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sharesd_stream_last_sequence",
			Help: "Last sequence of the CRAFTKIT stream as last seen by the projector.",
		}),
		BatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sharesd_apply_batch_duration_seconds",
			Help:    "Time to apply one batch of events to Redis.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sharesd_apply_batch_events",
			Help:    "Events per applied batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		RedisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sharesd_redis_errors_total",
			Help: "Redis errors seen by the projector (each followed by a retry).",
		}),
		NATSErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sharesd_nats_errors_total",
			Help: "NATS errors seen by the projector (each followed by a retry).",
		}),
		RebuildDone: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sharesd_rebuild_events_done",
			Help: "Events replayed by the rebuild in progress.",
		}),
		RebuildTotal: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sharesd_rebuild_events_total",
			Help: "Events the rebuild in progress must replay.",
		}),
		Rebuilding: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sharesd_rebuild_in_progress",
			Help: "1 while this process rebuilds a generation, else 0.",
		}),
		SelfHeals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sharesd_self_heals_total",
			Help: "Rebuilds started because the read model vanished or the stream went backwards.",
		}),
		LastAppliedAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sharesd_last_applied_timestamp_seconds",
			Help: "Unix time at which the projector last applied a batch.",
		}),
	}
	reg.MustRegister(m.Applied, m.DeadLettered, m.DeadLetterFailed, m.Redeliveries, m.LagEvents, m.LagSeconds, m.Position,
		m.StreamHead, m.BatchSeconds, m.BatchSize, m.RedisErrors, m.NATSErrors, m.RebuildDone,
		m.RebuildTotal, m.Rebuilding, m.SelfHeals, m.LastAppliedAge)
	return m
}
