package projector

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the projector's Prometheus metrics. Construct them with
// NewMetrics on the registry of the process; nothing is registered globally.
type Metrics struct {
	Applied      *prometheus.CounterVec // by event type and outcome
	DeadLettered *prometheus.CounterVec // by reason
	Redeliveries prometheus.Counter
	LagEvents    prometheus.Gauge
	LagSeconds   prometheus.Gauge
	Position     prometheus.Gauge
	StreamHead   prometheus.Gauge
	BatchSeconds prometheus.Histogram
	BatchSize    prometheus.Histogram
	RedisErrors  prometheus.Counter
	NATSErrors   prometheus.Counter
	RebuildDone  prometheus.Gauge
	RebuildTotal prometheus.Gauge
	Rebuilding   prometheus.Gauge
	SelfHeals    prometheus.Counter
	// PartitionsOwned is how many partition leases this process holds.
	PartitionsOwned prometheus.Gauge
	// PartitionLag is, per partition this process holds, how far its
	// position is behind the stream's head, in stream sequences.
	PartitionLag *prometheus.GaugeVec
	// LastApplied is the Unix time at which a batch was last applied.
	LastApplied prometheus.Gauge

	// DeadLetterFailed counts bad events the dead-letter stream refused
	// even as a headers-only copy, by refusal (recorded and passed over).
	DeadLetterFailed *prometheus.CounterVec
}

// NewMetrics creates the projector's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := factory{reg}
	return &Metrics{
		Applied: f.counterVec("sharesd_events_applied_total", "Events processed by the projector, by event type and outcome "+
			"(applied, stale, duplicate, project_mismatch, stale_project_mismatch, render_deleted, pending, key_hash_taken).", "type", "outcome"),
		DeadLettered: f.counterVec("sharesd_events_deadlettered_total", "Events copied to the dead-letter stream, by reason.", "reason"),
		DeadLetterFailed: f.counterVec("sharesd_events_deadletter_failed_total", "Bad events the dead-letter stream refused even as a headers-only copy, "+
			"recorded in the SHARESD_DEADLETTER bucket and passed over, by refusal (too_large, header, subject, stream_full, sealed, refused), "+
			"or held events gone from the stream before their render was registered (gone_from_stream).", "reason"),
		Redeliveries: f.counter("sharesd_redeliveries_total", "Events delivered again after they had been applied (skipped by the sequence guard)."),
		LagEvents:    f.gauge("sharesd_projection_lag_events", "Events in the stream not yet applied to the active generation."),
		LagSeconds: f.gauge("sharesd_projection_lag_seconds",
			"Age of the last applied event when it was applied (stream time to apply time), or 0 when caught up."),
		Position:   f.gauge("sharesd_projection_position", "Stream sequence up to which the projector has applied every event."),
		StreamHead: f.gauge("sharesd_stream_last_sequence", "Last sequence of the CRAFTKIT stream as last seen by the projector."),
		BatchSeconds: f.histogram("sharesd_apply_batch_duration_seconds", "Time to apply one batch of events to Redis.",
			prometheus.ExponentialBuckets(0.0002, 2, 14)),
		BatchSize:       f.histogram("sharesd_apply_batch_events", "Events per applied batch.", prometheus.ExponentialBuckets(1, 2, 11)),
		RedisErrors:     f.counter("sharesd_redis_errors_total", "Redis errors seen by the projector (each followed by a retry)."),
		NATSErrors:      f.counter("sharesd_nats_errors_total", "NATS errors seen by the projector (each followed by a retry)."),
		RebuildDone:     f.gauge("sharesd_rebuild_events_done", "Events replayed by the rebuild in progress."),
		RebuildTotal:    f.gauge("sharesd_rebuild_events_total", "Events the rebuild in progress must replay."),
		Rebuilding:      f.gauge("sharesd_rebuild_in_progress", "1 while this process rebuilds a generation, else 0."),
		SelfHeals:       f.counter("sharesd_self_heals_total", "Rebuilds started because the read model vanished or the stream went backwards."),
		LastApplied:     f.gauge("sharesd_last_applied_timestamp_seconds", "Unix time at which the projector last applied a batch."),
		PartitionsOwned: f.gauge("sharesd_partitions_owned", "Partition leases this process holds."),
		PartitionLag: f.gaugeVec("sharesd_partition_lag_events",
			"Per partition this process holds: stream sequences between its position and the stream's head.", "partition"),
	}
}

// factory makes metrics and registers each on reg as it makes it.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	return register(f.reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(f.reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	return register(f.reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(f.reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	return register(f.reg, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	reg.MustRegister(c)
	return c
}
