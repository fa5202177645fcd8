package projector

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/model"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// VerifyOptions selects what Verify compares.
type VerifyOptions struct {
	RenderID    string        // only this render; else every render (or a sample)
	Sample      int           // compare at most this many renders, chosen at random; 0 for all
	DefaultBase string        // the API's share base for projects without one
	Horizon     time.Duration // the projector's dedupe horizon
	Wait        time.Duration // how long to wait for a projector that is behind (default 5s)
}

// Diff is one render that Redis answers differently from the stream.
type Diff struct {
	RenderID string
	Reason   string
	Want     string // the model's answer, JSON (or "404")
	Got      string // Redis's answer
}

// Report is the result of Verify.
type Report struct {
	Head    uint64 // the stream's last sequence when it was read
	Checked int
	Moved   int // renders that received events after the stream was read
	Keys    int // API keys checked
	Diffs   []Diff
}

// Verify recomputes renders from the stream with the reference model and
// compares them with what the active generation answers.
func Verify(ctx context.Context, js jetstream.JetStream, store *readmodel.Store, opts VerifyOptions) (Report, error) {
	if opts.Wait <= 0 {
		opts.Wait = 5 * time.Second
	}
	if opts.Horizon <= 0 {
		opts.Horizon = readmodel.DefaultHorizon
	}
	var filter []string
	if opts.RenderID != "" {
		// Project events shape share URLs too: read those with the render's.
		filter = append(events.RenderSubjects(opts.RenderID), events.ProjectSubjects)
	}
	msgs, head, err := ReadStream(ctx, js, filter)
	if err != nil {
		return Report{}, fmt.Errorf("read stream: %w", err)
	}
	m := model.Fold(msgs, opts.Horizon)
	rep := Report{Head: head}
	ids := renderIDs(m, opts)
	for _, id := range ids {
		d, moved, err := verifyRender(ctx, store, m, id, opts)
		if err != nil {
			return rep, err
		}
		rep.Checked++
		if moved {
			rep.Moved++
		}
		if d != nil {
			rep.Diffs = append(rep.Diffs, *d)
		}
	}
	if opts.RenderID == "" {
		rep.Keys, rep.Diffs = verifyKeys(ctx, store, m, rep.Diffs)
	}
	return rep, nil
}

func renderIDs(m *model.Model, opts VerifyOptions) []string {
	if opts.RenderID != "" {
		return []string{opts.RenderID}
	}
	ids := make([]string, 0, len(m.Renders))
	for id := range m.Renders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if opts.Sample > 0 && opts.Sample < len(ids) {
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		ids = ids[:opts.Sample]
	}
	return ids
}

// verifyRender compares one render, waiting for a projector that is behind.
func verifyRender(ctx context.Context, store *readmodel.Store, m *model.Model, id string, opts VerifyOptions) (*Diff, bool, error) {
	r := m.Renders[id]
	project, lastSeq := "", uint64(0)
	if r != nil {
		project, lastSeq = r.Project, r.LastSeq
	}
	want, found := m.List(project, id, opts.DefaultBase)
	deadline := time.Now().Add(opts.Wait)
	for {
		got, seq, err := readRender(ctx, store, project, id, opts.DefaultBase)
		if err != nil {
			return nil, false, err
		}
		if got != nil && seq > lastSeq {
			return nil, true, nil // newer events than the stream we read
		}
		var d *Diff
		switch {
		case !found && got != nil:
			d = &Diff{RenderID: id, Reason: "Redis lists a render the stream says answers 404", Want: "404", Got: toJSON(got)}
		case found && got == nil:
			d = &Diff{RenderID: id, Reason: "Redis answers 404 for a render the stream lists", Want: toJSON(want), Got: "404"}
		case found && !reflect.DeepEqual(want, got):
			d = &Diff{RenderID: id, Reason: fmt.Sprintf("lists differ (Redis at seq %d, stream at %d)", seq, lastSeq), Want: toJSON(want), Got: toJSON(got)}
		}
		if d == nil || time.Now().After(deadline) {
			return d, false, nil
		}
		sleep(ctx, 100*time.Millisecond) // the projector may be catching up
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
	}
}

// readRender reads one render as the API renders it; nil for a 404.
func readRender(ctx context.Context, store *readmodel.Store, project, id, base string) ([]model.Share, uint64, error) {
	l, err := store.List(ctx, project, id, nil)
	if errors.Is(err, readmodel.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read render %s: %w", id, err)
	}
	shares, err := modelShares(l, base)
	if err != nil {
		return nil, 0, fmt.Errorf("render %s: %w", id, err)
	}
	return shares, l.Seq, nil
}

// modelShares is l as the reference model lists it: what the API renders,
// with share URLs under the project's share base or else defaultBase.
func modelShares(l *readmodel.List, defaultBase string) ([]model.Share, error) {
	base := cmp.Or(l.ShareBase, defaultBase)
	shares := []model.Share{}
	for v, err := range l.Shares() {
		if err != nil {
			return nil, err
		}
		shares = append(shares, modelShare(&v, base))
	}
	return shares, nil
}

// modelShare is v as the reference model holds it.
func modelShare(v *readmodel.Share, base string) model.Share {
	str := func(s readmodel.NullString) *string {
		if !s.Valid {
			return nil
		}
		t := string(s.B)
		return &t
	}
	at := func(t readmodel.NullMillis) *string {
		if !t.Valid {
			return nil
		}
		s := events.FormatMillis(t.Ms)
		return &s
	}
	return model.Share{ID: string(v.ID), Channel: v.Channel, RecipientEmail: str(v.RecipientEmail), Message: str(v.Message),
		RevokedAt: at(v.RevokedAt), RevokedReason: str(v.RevokedReason), ExpiresAt: at(v.ExpiresAt),
		CreatedAt: events.FormatMillis(v.CreatedAt), ShareToken: string(v.ShareToken), ClickCount: v.ClickCount,
		ShareURL: base + "/share/" + string(v.ShareToken)}
}

func verifyKeys(ctx context.Context, store *readmodel.Store, m *model.Model, diffs []Diff) (int, []Diff) {
	n := 0
	for id, k := range m.Keys {
		if k.Hash == "" {
			continue
		}
		n++
		got, err := store.Key(ctx, k.Hash)
		want := readmodel.Key{ID: id, ProjectID: k.Project, Environment: k.Env, Revoked: k.Revoked}
		if err != nil || got != want {
			// Name the key by id only: its hash is a secret.
			diffs = append(diffs, Diff{RenderID: "apikey " + id, Reason: "API key differs",
				Want: fmt.Sprintf("project=%s env=%s revoked=%t", want.ProjectID, want.Environment, want.Revoked),
				Got:  fmt.Sprintf("project=%s env=%s revoked=%t err=%v", got.ProjectID, got.Environment, got.Revoked, err)})
		}
	}
	return n, diffs
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
