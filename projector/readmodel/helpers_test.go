package readmodel

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

const (
	projectA = "0b6c7c0e-8a1f-4c7e-9d2a-3e4f5a6b7c8d"
	projectB = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	renderA  = "5b3e8f20-9a4d-4c6b-8e2f-1d7a6b5c4e32"
	renderB  = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"

	testBase = "https://www.craftkit.dev"
)

// epoch is the stream time of sequence 0; sequence n is n ms later unless
// an op says otherwise.
var epoch = time.Date(2026, 6, 5, 9, 0, 0, 0, time.UTC)

// fixture is a Store on a real redis-server, written as the projector
// writes it.
type fixture struct {
	t     testing.TB
	srv   *redistest.Server
	rdb   *redis.Client
	store *Store
	gen   string
	seq   uint64
}

func newFixture(t testing.TB, horizon time.Duration) *fixture {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	store := New(rdb, horizon)
	if err := store.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	gen := NewGen(time.Now())
	if ok, err := store.Activate(context.Background(), gen, ""); err != nil || !ok {
		t.Fatalf("activate: ok=%v err=%v", ok, err)
	}
	return &fixture{t: t, srv: srv, rdb: rdb, store: store, gen: gen}
}

// op numbers e with the next sequence, at stream time at (the zero time
// for epoch + seq ms).
func (f *fixture) op(e eventstest.Event, at time.Time) Op {
	f.t.Helper()
	f.seq++
	if at.IsZero() {
		at = epoch.Add(time.Duration(f.seq) * time.Millisecond)
	}
	return Op{Seq: f.seq, Time: at, Event: e.Decode(f.t)}
}

// apply applies evs to the fixture's generation in one call.
func (f *fixture) apply(evs ...eventstest.Event) []Outcome {
	f.t.Helper()
	ops := make([]Op, len(evs))
	for i, e := range evs {
		ops[i] = f.op(e, time.Time{})
	}
	return f.applyOps(f.gen, ops...)
}

func (f *fixture) applyOps(gen string, ops ...Op) []Outcome {
	f.t.Helper()
	res := f.applyResults(gen, ops...)
	out := make([]Outcome, len(res))
	for i, r := range res {
		out[i] = r.Outcome
	}
	return out
}

func (f *fixture) applyResults(gen string, ops ...Op) []Result {
	f.t.Helper()
	out, _, err := f.store.Apply(context.Background(), gen, ops, 0, false)
	if err != nil {
		f.t.Fatalf("apply: %v", err)
	}
	return out
}

// share is one share of a list with its times formatted as the contract
// writes them; nil is null.
type share struct {
	ID             string
	Channel        string
	RecipientEmail *string
	Message        *string
	RevokedAt      *string
	RevokedReason  *string
	ExpiresAt      *string
	CreatedAt      string
	ShareToken     string
	ClickCount     int64
}

// shareOf copies a view into a share.
func shareOf(v Share) share {
	str := func(s NullString) *string {
		if !s.Valid {
			return nil
		}
		return strp(string(s.B))
	}
	at := func(t NullMillis) *string {
		if !t.Valid {
			return nil
		}
		return strp(events.FormatMillis(t.Ms))
	}
	return share{ID: string(v.ID), Channel: v.Channel, RecipientEmail: str(v.RecipientEmail), Message: str(v.Message),
		RevokedAt: at(v.RevokedAt), RevokedReason: str(v.RevokedReason), ExpiresAt: at(v.ExpiresAt),
		CreatedAt: events.FormatMillis(v.CreatedAt), ShareToken: string(v.ShareToken), ClickCount: v.ClickCount}
}

// list reads render's list.
func (f *fixture) list(project, render string) ([]share, *List, error) {
	f.t.Helper()
	l, err := f.store.List(context.Background(), project, render, nil)
	if err != nil {
		return nil, nil, err
	}
	var out []share
	for v, err := range l.Shares() {
		if err != nil {
			f.t.Fatalf("read list: %v", err)
		}
		out = append(out, shareOf(v))
	}
	if got := l.Len(); got != len(out) {
		f.t.Errorf("List.Len() = %d, want %d", got, len(out))
	}
	return out, l, nil
}

// mustList is list for a render that must exist.
func (f *fixture) mustList(project, render string) ([]share, *List) {
	f.t.Helper()
	s, l, err := f.list(project, render)
	if err != nil {
		f.t.Fatalf("list %s: %v", render, err)
	}
	return s, l
}

// summary is a list in one comparable line per share.
func summary(list []share) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = fmt.Sprintf("%s %s clicks=%d revoked=%s/%s msg=%s token=%s", s.ID, s.CreatedAt, s.ClickCount,
			str(s.RevokedAt), str(s.RevokedReason), str(s.Message), s.ShareToken)
	}
	return out
}

// String shows every field, nulls as null.
func (s share) String() string {
	return fmt.Sprintf("{id:%q channel:%q recipientEmail:%s message:%s revokedAt:%s revokedReason:%s expiresAt:%s createdAt:%q shareToken:%q clickCount:%d}",
		s.ID, s.Channel, str(s.RecipientEmail), str(s.Message), str(s.RevokedAt), str(s.RevokedReason), str(s.ExpiresAt),
		s.CreatedAt, s.ShareToken, s.ClickCount)
}

func str(p *string) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprintf("%q", *p)
}

// follow runs FollowApplied until the test ends and returns what it
// reports.
func (f *fixture) follow() <-chan AppliedPos {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan AppliedPos, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.store.FollowApplied(ctx, func(a AppliedPos) { ch <- a })
	}()
	f.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			f.t.Error("FollowApplied did not return within 5s of its context ending")
		}
	})
	return ch
}

// scanKeys returns every key that matches pattern, sorted.
func (f *fixture) scanKeys(pattern string) []string {
	f.t.Helper()
	var keys []string
	it := f.rdb.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for it.Next(context.Background()) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		f.t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// renderKeys is Store.RenderKeys: the keys of render in gen, by what they
// hold.
func (f *fixture) renderKeys(gen, render string) map[string]string {
	f.t.Helper()
	keys, err := f.store.RenderKeys(context.Background(), gen, render)
	if err != nil {
		f.t.Fatal(err)
	}
	return keys
}

func strp(s string) *string { return &s }
