package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector"
)

// TestDeadletterListNotStored makes the dead-letter stream refuse every
// copy: `deadletter list` shows the bad event the projector recorded
// instead, marked as not stored, with its body (from CRAFTKIT) masked. It
// also shows what a stored copy lacks. The old projector never got past the
// bad event, and the old list showed only the stream.
func TestDeadletterListNotStored(t *testing.T) {
	t.Parallel()
	h := startCtl(t, true)
	ctx := context.Background()

	// A copy the projector had to cut.
	cut := nats.NewMsg(events.DeadLetterPre + events.Subject(events.TypeShareViewed, ctlRender))
	cut.Data = []byte(`{"id":"ev-cut","type":"share.vie`)
	cut.Header.Set(projector.HeaderReason, "events: $: got 2000000 bytes, want at most 65536")
	cut.Header.Set(projector.HeaderField, "$")
	cut.Header.Set(projector.HeaderSeq, "7")
	cut.Header.Set(projector.HeaderTruncated, "body 2000000")
	if _, err := h.js.PublishMsg(ctx, cut); err != nil {
		t.Fatal(err)
	}
	// From now on the stream refuses everything.
	s, err := h.js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgs, cfg.Discard = 1, jetstream.DiscardNew
	if _, err := h.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	upperHash := strings.Repeat("CD", 32)
	publishCtl(t, h, eventstest.RenderCreated(ctlProject, ctlRender).WithID("ev-render"))
	badSeq := publishCtl(t, h, eventstest.APIKeyCreated(ctlProject, "key_bad", "", "live").With("keyHash", upperHash).WithID("ev-key-bad"))
	publishCtl(t, h, ctlShare("share-1", "link").WithID("ev-share"))
	h.waitShares(t, 15*time.Second, 1, "the one behind the bad event")

	out, _, err := h.run(t, "", "deadletter", "list")
	if err != nil {
		t.Fatalf("deadletter list: %v", err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^1\s+\S+\s+\S+\s+7\s+events: \$: got 2000000 bytes, want at most 65536 \[copy lacks body 2000000\]$`),
		regexp.MustCompile(`NOT STORED: 1 bad events .* bucket SHARESD_DEADLETTER`),
		regexp.MustCompile(fmt.Sprintf(`(?m)^\S+\s+%s\s+%d\s+events: data\.keyHash: .*maximum messages exceeded`,
			regexp.QuoteMeta(events.Subject(events.TypeAPIKeyCreated, "key_bad")), badSeq)),
	} {
		if !want.MatchString(out) {
			t.Fatalf("list lacks %s:\n%s", want, out)
		}
	}

	out, _, err = h.run(t, "", "deadletter", "list", "-json", "-show-body")
	if err != nil {
		t.Fatalf("deadletter list -json: %v", err)
	}
	got := decodeDeadLetters(t, out)
	if len(got) != 2 || got[0].NotStored || got[0].Truncated != "body 2000000" {
		t.Fatalf("list -json = %+v, want the cut copy first, then the event not stored", got)
	}
	if d := got[1]; !d.NotStored || d.OriginalSeq != badSeq || d.EventID != "ev-key-bad" || d.Refusal == "" || !strings.Contains(d.Body, `"keyHash":"***"`) {
		t.Fatalf("not stored = %+v, want the key event at seq %d with the refusal and its body masked", d, badSeq)
	}
	if strings.Contains(strings.ToLower(out), strings.ToLower(upperHash)) {
		t.Fatal("list shows a key hash")
	}

	out, _, err = h.run(t, "", "status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if !strings.Contains(out, "(and 1 not stored)") || !strings.Contains(out, "1 bad events the dead-letter stream refused") {
		t.Fatalf("status does not count the event not stored:\n%s", out)
	}
}
