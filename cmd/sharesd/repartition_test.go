package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// runProjector runs a projector with parts partitions on h's servers until
// the returned stop is called; stop returns what Run returned.
func runPartitioned(t *testing.T, h *ctlHarness, parts int) (stop func() error) {
	t.Helper()
	store := readmodel.New(h.rdb, time.Hour)
	store.SetPartitions(parts)
	ctx, cancel := context.WithCancel(context.Background())
	proj := projector.New(h.js, store, slog.New(slog.DiscardHandler), projector.NewMetrics(prometheus.NewRegistry()),
		projector.Config{LeaseTTL: time.Second})
	done := make(chan error, 1)
	go func() { done <- proj.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			cancel()
			err, stopped = <-done, true
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// TestRepartition re-partitions a deployment of 8 into 4 as the README
// says: a rebuild with another number is refused, so is -repartition while
// a projector runs; with every projector stopped it rebuilds, records the
// new number, and then a projector with the old number refuses to run
// while one with the new number projects on.
func TestRepartition(t *testing.T) {
	t.Parallel()
	h := startCtl(t, false)
	stop := runPartitioned(t, h, 8)
	publishCtl(t, h, eventstest.RenderCreated(ctlProject, ctlRender))
	publishCtl(t, h, ctlShare("share-1", "link"))
	last := publishCtl(t, h, eventstest.ShareViewed(ctlProject, ctlRender, "share-1"))
	h.waitShares(t, 10*time.Second, 1, "the share")

	if _, _, err := h.run(t, "", "rebuild", "-partitions", "4"); err == nil || !strings.Contains(err.Error(), "uses 8 partitions") {
		t.Fatalf("rebuild -partitions 4 on a deployment of 8: %v, want a refusal naming 8", err)
	}
	if _, _, err := h.run(t, "", "rebuild", "-repartition", "-partitions", "4"); err == nil || !strings.Contains(err.Error(), "stop every projector") {
		t.Fatalf("rebuild -repartition with a projector running: %v, want a refusal", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("projector: %v", err)
	}
	if _, _, err := h.run(t, "", "rebuild", "-repartition", "-partitions", "4"); err != nil {
		t.Fatalf("rebuild -repartition -partitions 4: %v", err)
	}
	if n, err := h.store.RecordedPartitions(context.Background()); err != nil || n != 4 {
		t.Fatalf("recorded partitions %d, %v; want 4", n, err)
	}

	eight := readmodel.New(h.rdb, time.Hour)
	eight.SetPartitions(8)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	old := projector.New(h.js, eight, slog.New(slog.DiscardHandler), projector.NewMetrics(prometheus.NewRegistry()), projector.Config{})
	if err := old.Run(ctx); !errors.Is(err, readmodel.ErrPartitionsDiffer) {
		t.Fatalf("a projector with 8 partitions on a deployment of 4: Run = %v, want ErrPartitionsDiffer", err)
	}
	runPartitioned(t, h, 4)
	more := publishCtl(t, h, eventstest.ShareViewed(ctlProject, ctlRender, "share-1"))
	four := readmodel.New(h.rdb, time.Hour)
	four.SetPartitions(4)
	polltest.WaitFor(t, 10*time.Second, func() error {
		ctl, err := four.ReadControl(context.Background())
		if err != nil {
			return err
		}
		if got := ctl.MinPos(ctl.Active, 4); got < more {
			return fmt.Errorf("4 partitions at %d at least, want %d (was %d before)", got, more, last)
		}
		return nil
	})
	l, err := four.List(context.Background(), ctlProject, ctlRender, nil)
	if err != nil {
		t.Fatal(err)
	}
	for s, err := range l.Shares() {
		if err != nil || s.ClickCount != 2 {
			t.Fatalf("share after re-partitioning: %+v, %v; want 2 clicks", s, err)
		}
	}
}

// TestServeRefusesOtherPartitions checks that `sharesd api` and `sharesd
// projector` started with another number of partitions than the one the
// deployment recorded stop at once, saying both numbers and what to do.
func TestServeRefusesOtherPartitions(t *testing.T) {
	t.Parallel()
	h := startCtl(t, false)
	if err := h.store.AgreePartitions(context.Background()); err != nil { // the deployment: 8
		t.Fatal(err)
	}
	for _, sub := range []string{"api", "projector"} {
		_, _, err := h.run(t, "", sub, "-http-addr", "127.0.0.1:0", "-partitions", "16")
		if err == nil || !strings.Contains(err.Error(), "uses 8, this process was started with 16") || !strings.Contains(err.Error(), "PARTITIONS=8") {
			t.Errorf("sharesd %s -partitions 16 on a deployment of 8: %v, want a refusal naming both and the fix", sub, err)
		}
	}
}
