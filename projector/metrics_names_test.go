package projector_test

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/craftkit/sharesd/projector"
)

// TestMetricNames checks the projector's metrics as operators see them:
// every name, type and help text, and the histograms' buckets, are the
// ones dashboards and alerts were written against.
func TestMetricNames(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	m := projector.NewMetrics(reg)
	// A vector appears once it has a child.
	m.Applied.WithLabelValues("share.viewed", "applied")
	m.DeadLettered.WithLabelValues("malformed")
	m.DeadLetterFailed.WithLabelValues("too_large")
	m.LastApplied.SetToCurrentTime()
	m.PartitionLag.WithLabelValues("3")

	counter, gauge, histogram := dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM
	want := map[string]struct {
		typ  dto.MetricType
		help string
	}{
		"sharesd_events_applied_total":           {counter, "Events processed by the projector, by event type and outcome (applied, stale, duplicate, project_mismatch, stale_project_mismatch, render_deleted, pending, key_hash_taken)."},
		"sharesd_events_deadlettered_total":      {counter, "Events copied to the dead-letter stream, by reason."},
		"sharesd_events_deadletter_failed_total": {counter, "Bad events the dead-letter stream refused even as a headers-only copy, recorded in the SHARESD_DEADLETTER bucket and passed over, by refusal (too_large, header, subject, stream_full, sealed, refused), or held events gone from the stream before their render was registered (gone_from_stream)."},
		"sharesd_redeliveries_total":             {counter, "Events delivered again after they had been applied (skipped by the sequence guard)."},
		"sharesd_projection_lag_events":          {gauge, "Events in the stream not yet applied to the active generation."},
		"sharesd_projection_lag_seconds":         {gauge, "Age of the last applied event when it was applied (stream time to apply time), or 0 when caught up."},
		"sharesd_projection_position":            {gauge, "Stream sequence up to which the projector has applied every event."},
		"sharesd_stream_last_sequence":           {gauge, "Last sequence of the CRAFTKIT stream as last seen by the projector."},
		"sharesd_apply_batch_duration_seconds":   {histogram, "Time to apply one batch of events to Redis."},
		"sharesd_apply_batch_events":             {histogram, "Events per applied batch."},
		"sharesd_redis_errors_total":             {counter, "Redis errors seen by the projector (each followed by a retry)."},
		"sharesd_nats_errors_total":              {counter, "NATS errors seen by the projector (each followed by a retry)."},
		"sharesd_rebuild_events_done":            {gauge, "Events replayed by the rebuild in progress."},
		"sharesd_rebuild_events_total":           {gauge, "Events the rebuild in progress must replay."},
		"sharesd_rebuild_in_progress":            {gauge, "1 while this process rebuilds a generation, else 0."},
		"sharesd_self_heals_total":               {counter, "Rebuilds started because the read model vanished or the stream went backwards."},
		"sharesd_last_applied_timestamp_seconds": {gauge, "Unix time at which the projector last applied a batch."},
		"sharesd_partitions_owned":               {gauge, "Partition leases this process holds."},
		"sharesd_partition_lag_events":           {gauge, "Per partition this process holds: stream sequences between its position and the stream's head."},
	}
	buckets := map[string][]float64{
		"sharesd_apply_batch_duration_seconds": prometheus.ExponentialBuckets(0.0002, 2, 14),
		"sharesd_apply_batch_events":           prometheus.ExponentialBuckets(1, 2, 11),
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		name := f.GetName()
		seen[name] = true
		w, ok := want[name]
		switch {
		case !ok:
			t.Errorf("unexpected metric %s", name)
			continue
		case f.GetType() != w.typ:
			t.Errorf("%s is a %v, want a %v", name, f.GetType(), w.typ)
		case f.GetHelp() != w.help:
			t.Errorf("%s help = %q, want %q", name, f.GetHelp(), w.help)
		}
		if b, ok := buckets[name]; ok {
			var got []float64
			for _, bk := range f.GetMetric()[0].GetHistogram().GetBucket() {
				got = append(got, bk.GetUpperBound())
			}
			if !slices.Equal(got, b) {
				t.Errorf("%s buckets = %v, want %v", name, got, b)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("metric %s is not registered", name)
		}
	}
}
