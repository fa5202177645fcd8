package projector_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// TestStreamWentBackwards deletes and recreates the stream under a running
// projector and publishes a shorter, different history: the projector must
// notice, rebuild, and list only the new history. The new history's bad
// events are dead-lettered although the old history had passed their
// sequences, one of them with a bad event of its own.
func TestStreamWentBackwards(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t)
	ctx := context.Background()
	oldProject, newProject := eventstest.NewUUID(), eventstest.NewUUID()
	old := workload(oldProject, 2, 3, 10)
	e.publishAsync(t, old[:9])
	oldBad := e.publishBad(t, old[0].Render, "old history's bad event")
	e.publishAsync(t, old[9:])
	e.waitApplied(t, e.lastSeq(t), r)
	modelOf(oldProject, old).check(t, e)
	before, err := e.store.ReadControl(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if err := e.js.DeleteStream(ctx, "CRAFTKIT"); err != nil {
		t.Fatal(err)
	}
	if err := projector.EnsureStreams(ctx, e.js); err != nil {
		t.Fatal(err)
	}
	fresh := workload(newProject, 1, 2, 2)
	seqs := e.publishAsync(t, fresh[:2])
	rebuiltBad := e.publishBad(t, fresh[0].Render, "new history's bad event, replayed by the rebuild")
	seqs = append(seqs, e.publishAsync(t, fresh[2:])...)
	if last := seqs[len(seqs)-1]; last >= before.Pos[before.Active] {
		t.Fatalf("new history ends at %d, want below the old position %d", last, before.Pos[before.Active])
	}

	gone := modelOf(oldProject, nil) // the old renders, unlisted
	for _, ev := range old {
		gone.shares[ev.Render] = map[string]int{}
	}
	m := modelOf(newProject, fresh)
	polltest.WaitFor(t, 20*time.Second, func() error {
		ctl, err := e.store.ReadControl(ctx)
		if err != nil {
			return err
		}
		if ctl.Active == before.Active {
			return fmt.Errorf("generation %s still active", ctl.Active)
		}
		if err := m.compareAll(t, e); err != nil {
			return err
		}
		return gone.compareAll(t, e)
	})

	// The live projector meets a bad event at the sequence of the old one.
	for e.lastSeq(t) < oldBad-1 {
		ev := moreViews(m, 1)[0]
		e.publish(t, ev)
		m.add(ev)
	}
	liveBad := e.publishBad(t, fresh[0].Render, "new history's bad event, at the old one's sequence")
	if liveBad != oldBad {
		t.Fatalf("new bad event at %d, want %d", liveBad, oldBad)
	}
	e.waitApplied(t, e.publish(t, eventstest.RenderCreated(newProject, eventstest.NewUUID())), r)
	m.check(t, e)
	for _, bad := range []struct {
		seq  uint64
		body string
	}{{oldBad, "old history's bad event"}, {rebuiltBad, "new history's bad event, replayed by the rebuild"},
		{liveBad, "new history's bad event, at the old one's sequence"}} {
		if !e.hasDeadLetter(t, bad.seq, bad.body) {
			t.Errorf("%q (seq %d) was not dead-lettered", bad.body, bad.seq)
		}
	}
	e.wantOnlyActiveGen(t)
}

// publishBad publishes a message that is not JSON on a view subject of
// render and returns its sequence.
func (e *env) publishBad(t testing.TB, render, body string) uint64 {
	t.Helper()
	return natstest.Publish(t, e.js, events.Subject(events.TypeShareViewed, render), []byte(body), "bad-"+eventstest.NewUUID())
}

// hasDeadLetter reports whether the dead-letter stream holds a copy of the
// event at seq with body.
func (e *env) hasDeadLetter(t testing.TB, seq uint64, body string) bool {
	t.Helper()
	for _, m := range e.deadLetters(t) {
		if m.Header.Get(projector.HeaderSeq) == itoa(seq) && string(m.Data) == body {
			return true
		}
	}
	return false
}

// TestHandover hands a generation rebuilt by hand to the live projector,
// as `sharesd rebuild` does: the projector brings it up to its own
// position, makes it active, and deletes the old one, while every read
// lists exactly the same.
func TestHandover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t)
	ctx := context.Background()
	project := eventstest.NewUUID()
	evs := workload(project, 3, 4, 10)
	e.publishAsync(t, evs)
	e.waitApplied(t, e.lastSeq(t), r)
	ctl, err := e.store.ReadControl(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := ctl.Active

	// Rebuild all but the last 30 events into g2 by hand.
	g2 := readmodel.NewGen(time.Now())
	if err := e.store.StartBuilding(ctx, g2); err != nil {
		t.Fatal(err)
	}
	upto := e.lastSeq(t) - 30
	if _, _, err := e.store.Apply(ctx, g2, e.ops(t, 1, upto), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetPos(ctx, g2, upto); err != nil {
		t.Fatal(err)
	}
	m := modelOf(project, evs)
	more := moreViews(m, 40)
	e.publishAsync(t, more)
	for _, ev := range more {
		m.add(ev)
	}
	e.waitApplied(t, e.lastSeq(t), r)
	m.check(t, e)

	if err := e.store.RequestHandover(ctx, g2); err != nil {
		t.Fatal(err)
	}
	renders := m.renders()
	for i := 0; ; i++ {
		if err := m.compare(t, e, renders[i%len(renders)]); err != nil {
			t.Fatalf("read %d during the handover: %v", i, err)
		}
		ctl, err := e.store.ReadControl(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ctl.Active == g2 && i >= len(renders) {
			if ctl.Handover != "" || ctl.Building != "" {
				t.Fatalf("control after the handover = %+v, want no handover or build pending", ctl)
			}
			break
		}
		if i > 20000 {
			t.Fatalf("generation %s not active after %d reads: control %+v", g2, i, ctl)
		}
	}
	m.check(t, e)
	e.wantOnlyActiveGen(t)
	if n := e.genKeys(t, old); n != 0 {
		t.Fatalf("old generation %s still has %d keys", old, n)
	}

	// The projector goes on in the new generation.
	after := moreViews(m, 20)
	e.publishAsync(t, after)
	for _, ev := range after {
		m.add(ev)
	}
	e.waitApplied(t, e.lastSeq(t), r)
	m.check(t, e)
}

// ops decodes the stream's events from sequence from to to, as the
// projector would apply them.
func (e *env) ops(t testing.TB, from, to uint64) []readmodel.Op {
	t.Helper()
	s, err := e.js.Stream(context.Background(), "CRAFTKIT")
	if err != nil {
		t.Fatal(err)
	}
	var ops []readmodel.Op
	for seq := from; seq <= to; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		ev, err := events.Decode(m.Subject, m.Data)
		if err != nil {
			t.Fatalf("decode %d: %v", seq, err)
		}
		ops = append(ops, readmodel.Op{Seq: seq, Time: m.Time, Event: ev})
	}
	return ops
}
