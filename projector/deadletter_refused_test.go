package projector_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
)

// TestDeadLetterStreamRefuses makes the dead-letter stream refuse every
// copy: the bad event is recorded in the dead-letter bucket, counted and
// passed over, and the good event behind it is applied. The old projector
// retried the refused publish forever.
func TestDeadLetterStreamRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, refusal string
		refuse        func(t *testing.T, e *env)
	}{
		{"full, discard new", "stream_full", func(t *testing.T, e *env) {
			updateDeadLetterStream(t, e, func(c *jetstream.StreamConfig) { c.MaxMsgs, c.Discard = 1, jetstream.DiscardNew })
			e.publishFiller(t)
		}},
		{"sealed", "sealed", func(t *testing.T, e *env) {
			updateDeadLetterStream(t, e, func(c *jetstream.StreamConfig) { c.Sealed = true })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			tt.refuse(t, e)
			before := len(e.deadLetters(t))
			r := e.start(t)
			project, render := eventstest.NewUUID(), eventstest.NewUUID()
			e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"))
			bad := e.publishBad(t, render, "not json")
			e.waitApplied(t, e.publish(t, eventstest.ShareViewed(project, render, "s1")), r)
			e.wantClicks(t, project, render, map[string]int{"s1": 1})

			fs, err := projector.Failures(ctx, e.js)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != 1 || fs[0].Seq != bad || fs[0].Code != "malformed" || fs[0].Subject != events.Subject(events.TypeShareViewed, render) || fs[0].Refusal == "" {
				t.Fatalf("recorded failures = %+v, want the bad event at seq %d, malformed, with the refusal", fs, bad)
			}
			if got := metric(t, r.reg, "sharesd_events_deadletter_failed_total", "reason", tt.refusal); got != 1 {
				t.Fatalf("sharesd_events_deadletter_failed_total{reason=%q} = %v, want 1", tt.refusal, got)
			}
			if got := len(e.deadLetters(t)); got != before {
				t.Fatalf("%d dead letters, want the %d from before", got, before)
			}
		})
	}

	// The stream's limit is lowered under a running projector, which still
	// works with the limit it read: the full copy is refused, and a
	// headers-only copy says why.
	t.Run("limit lowered under the projector", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		r := e.start(t)
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		e.waitApplied(t, e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z")), r)
		// The build that made the generation set Rebuilding; the live run
		// clears it once it has read the stream's limits.
		polltest.WaitFor(t, 10*time.Second, func() error {
			if r.p.Status().Rebuilding {
				return errors.New("the live run has not started")
			}
			return nil
		})
		updateDeadLetterStream(t, e, func(c *jetstream.StreamConfig) { c.MaxMsgSize = 2048 })
		body := strings.Repeat("x", 10<<10)
		bad := e.publishBad(t, render, body)
		e.waitApplied(t, e.publish(t, eventstest.ShareViewed(project, render, "s1")), r)
		e.wantClicks(t, project, render, map[string]int{"s1": 1})

		dl := onlyDeadLetterOf(t, e, bad)
		if len(dl.Data) != 0 || !strings.HasPrefix(dl.Header.Get(projector.HeaderTruncated), "body 10240") || dl.Header.Get(projector.HeaderRefused) == "" {
			t.Fatalf("dead letter has %d body bytes and headers %v, want a headers-only copy saying body 10240 and why", len(dl.Data), dl.Header)
		}
		if got := metric(t, r.reg, "sharesd_events_deadlettered_total", "reason", "malformed"); got != 1 {
			t.Fatalf("sharesd_events_deadlettered_total{reason=malformed} = %v, want 1", got)
		}
	})
}

// publishFiller publishes a message straight into the dead-letter stream.
func (e *env) publishFiller(t testing.TB) {
	t.Helper()
	if _, err := e.js.Publish(context.Background(), events.DeadLetterPre+events.SubjectPre+"filler", []byte("filler")); err != nil {
		t.Fatalf("fill %s: %v", events.DeadLetterStream, err)
	}
}
