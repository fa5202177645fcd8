// Package model is the reference model of the read model: a plain fold of
// contract events into the list every render should answer, written
// independently of the Redis scripts. `sharesd verify` compares Redis with
// it, and the property and crash tests use it as the expected answer.
package model

import (
	"sort"
	"time"

	"github.com/craftkit/sharesd/events"
)

// Msg is one message of the stream.
type Msg struct {
	Seq     uint64
	Time    time.Time // the stream's timestamp
	Subject string
	Data    []byte
}

// Share is one share as the API lists it, in the contract's field order.
type Share struct {
	ID             string  `json:"id"`
	Channel        string  `json:"channel"`
	RecipientEmail *string `json:"recipientEmail"`
	Message        *string `json:"message"`
	RevokedAt      *string `json:"revokedAt"`
	RevokedReason  *string `json:"revokedReason"`
	ExpiresAt      *string `json:"expiresAt"`
	CreatedAt      string  `json:"createdAt"`
	ShareToken     string  `json:"shareToken"`
	ClickCount     int64   `json:"clickCount"`
	ShareURL       string  `json:"shareUrl"`
}

// Render is what the model knows of one render.
type Render struct {
	Project string
	Listed  bool // render.created or share.created seen
	Deleted bool
	LastSeq uint64 // last stream sequence of an event of this render
	shares  map[string]*events.ShareCreated
	clicks  map[string]int64
	revoked map[string]*events.ShareRevoked
	seen    map[string]time.Time
}

// Key is an API key as the model knows it.
type Key struct {
	Project, Hash, Env string
	Revoked            bool
}

// Model is the fold of a stream.
type Model struct {
	Horizon  time.Duration
	Renders  map[string]*Render
	Bases    map[string]string // project -> share base
	Keys     map[string]*Key   // key id -> key
	projSeen map[string]map[string]time.Time
	// Rejected counts events that are not applied, by reason: "decode",
	// "project_mismatch".
	Rejected map[string]int
}

// New returns an empty model that deduplicates event ids over horizon.
func New(horizon time.Duration) *Model {
	return &Model{Horizon: horizon, Renders: map[string]*Render{}, Bases: map[string]string{},
		Keys: map[string]*Key{}, projSeen: map[string]map[string]time.Time{}, Rejected: map[string]int{}}
}

// Fold applies msgs in order to a new model.
func Fold(msgs []Msg, horizon time.Duration) *Model {
	m := New(horizon)
	for _, msg := range msgs {
		m.Apply(msg)
	}
	return m
}

// Apply applies one message, as the contract says.
func (m *Model) Apply(msg Msg) {
	ev, err := events.Decode(msg.Subject, msg.Data)
	if err != nil {
		m.Rejected["decode"]++
		return
	}
	switch d := ev.Data.(type) {
	case *events.APIKeyCreated:
		m.applyKey(ev, d.KeyID, func(k *Key) {
			if k.Hash == "" {
				k.Hash, k.Env = d.KeyHash, d.Environment
			}
		})
	case *events.APIKeyRevoked:
		m.applyKey(ev, d.KeyID, func(k *Key) { k.Revoked = true })
	case *events.ProjectUpdated:
		if !fresh(m.projSeenOf(ev.ProjectID), ev.ID, msg.Time, m.Horizon) {
			return
		}
		if d.ShareBase == nil {
			delete(m.Bases, ev.ProjectID)
		} else {
			m.Bases[ev.ProjectID] = *d.ShareBase
		}
	default:
		m.applyRender(msg, ev)
	}
}

func (m *Model) applyKey(ev events.Event, id string, f func(*Key)) {
	k := m.Keys[id]
	if k == nil {
		k = &Key{Project: ev.ProjectID}
		m.Keys[id] = k
	}
	if k.Project != ev.ProjectID {
		m.Rejected["project_mismatch"]++
		return
	}
	f(k)
}

func (m *Model) projSeenOf(p string) map[string]time.Time {
	s := m.projSeen[p]
	if s == nil {
		s = map[string]time.Time{}
		m.projSeen[p] = s
	}
	return s
}

// fresh records id as seen at now and reports whether it was not seen
// within horizon before now.
func fresh(seen map[string]time.Time, id string, now time.Time, horizon time.Duration) bool {
	now = now.Truncate(time.Millisecond)
	if at, ok := seen[id]; ok && !at.Before(now.Add(-horizon)) {
		return false
	}
	seen[id] = now
	return true
}

func (m *Model) applyRender(msg Msg, ev events.Event) {
	r := m.Renders[ev.RenderID]
	if r == nil {
		r = &Render{Project: ev.ProjectID, shares: map[string]*events.ShareCreated{}, clicks: map[string]int64{},
			revoked: map[string]*events.ShareRevoked{}, seen: map[string]time.Time{}}
		m.Renders[ev.RenderID] = r
	}
	r.LastSeq = msg.Seq
	if r.Project != ev.ProjectID {
		m.Rejected["project_mismatch"]++
		return
	}
	if r.Deleted || !fresh(r.seen, ev.ID, msg.Time, m.Horizon) {
		return
	}
	switch d := ev.Data.(type) {
	case *events.ShareCreated:
		if _, ok := r.shares[d.ShareID]; !ok {
			r.shares[d.ShareID] = d
		}
		r.Listed = true
	case *events.ShareRevoked:
		if _, ok := r.revoked[d.ShareID]; !ok {
			r.revoked[d.ShareID] = d
		}
	case *events.ShareViewed:
		r.clicks[d.ShareID]++
	default:
		if ev.Type == events.TypeRenderDeleted {
			*r = Render{Project: r.Project, Deleted: true, LastSeq: r.LastSeq}
			return
		}
		r.Listed = true
	}
}

// List is what GET /v1/renders/{renderID}/shares answers for a key of
// projectID, and whether it answers 200 at all (else 404).
func (m *Model) List(projectID, renderID, defaultBase string) ([]Share, bool) {
	r := m.Renders[renderID]
	if r == nil || !r.Listed || r.Deleted || r.Project != projectID {
		return nil, false
	}
	base, ok := m.Bases[projectID]
	if !ok {
		base = defaultBase
	}
	out := make([]Share, 0, len(r.shares))
	for id, s := range r.shares {
		sh := Share{ID: id, Channel: s.Channel, RecipientEmail: s.RecipientEmail, Message: s.Message,
			ExpiresAt: timeOrNil(s.ExpiresAt), CreatedAt: format(s.CreatedAt), ShareToken: s.ShareToken,
			ClickCount: r.clicks[id], ShareURL: base + "/share/" + s.ShareToken}
		if rv := r.revoked[id]; rv != nil {
			sh.RevokedAt, sh.RevokedReason = timeOrNil(&rv.RevokedAt), rv.Reason
		}
		out = append(out, sh)
	}
	sort.Slice(out, func(i, j int) bool {
		ci, cj := r.shares[out[i].ID].CreatedAt.Truncate(time.Millisecond), r.shares[out[j].ID].CreatedAt.Truncate(time.Millisecond)
		if !ci.Equal(cj) {
			return ci.After(cj)
		}
		return out[i].ID > out[j].ID
	})
	return out, true
}

func format(t time.Time) string { return events.FormatMillis(events.Millis(t)) }

func timeOrNil(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := format(*t)
	return &s
}
