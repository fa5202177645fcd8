package readmodel

import (
	"testing"

	"github.com/craftkit/sharesd/events"
)

// TestOutcomeString checks the outcome label of sharesd_events_applied_total:
// an outcome that dead-letters its event is labelled with the reason code
// its dead letter carries, so the two metrics can be read side by side.
func TestOutcomeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o    Outcome
		want string
	}{
		{Applied, "applied"},
		{Stale, "stale"},
		{Duplicate, "duplicate"},
		{Mismatch, events.CodeProjectMismatch},
		{Ignored, "render_deleted"},
		{StaleMismatch, "stale_" + events.CodeProjectMismatch},
		{Pending, "pending"},
		{HashTaken, events.CodeKeyHashTaken},
		{Outcome(99), "outcome(99)"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(tt.o), got, tt.want)
		}
	}
}
