// Package model is the reference model of the read model: a plain fold of
// contract events into the list every render should answer, written
// independently of the Redis scripts. `sharesd verify` compares Redis with
// it, and the property and crash tests use it as the expected answer.
package model

import (
	"errors"
	"maps"
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
	Project string // the project that registered it; "" until then
	Listed  bool   // render.created or share.created seen
	Deleted bool
	LastSeq uint64 // last stream sequence of an event of this render
	shares  map[string]*events.ShareCreated
	clicks  map[string]int64
	revoked map[string]*events.ShareRevoked
	seen    map[string]time.Time
	// pending holds, per project, what arrived before a render.created or
	// share.created registered the render.
	pending map[string]*early
}

// early is what one project sent for a render before it was registered.
type early struct {
	seqs    []uint64 // every event, duplicates included: dead-lettered if the project does not register it
	clicks  map[string]int64
	revoked map[string]*events.ShareRevoked
	deleted bool
	seen    map[string]time.Time
}

// Key is an API key as the model knows it. Hash is set only while the key
// id owns it; Created says its first apikey.created was applied, whether
// or not its hash was free.
type Key struct {
	Project, Hash, Env string
	Revoked, Created   bool
}

// Model is the fold of a stream.
type Model struct {
	Horizon time.Duration
	Renders map[string]*Render
	Bases   map[string]string // project -> share base
	Keys    map[string]*Key   // key id -> key
	// owners maps a key hash to the key id that registered it first.
	owners   map[string]string
	projSeen map[string]map[string]time.Time
	// Rejected counts events that are not applied, by the contract's reason
	// code (events.DecodeError.Code, events.CodeProjectMismatch,
	// events.CodeKeyHashTaken). Events of a project that did not register
	// their render count as project_mismatch when it is registered.
	Rejected map[string]int
	// Dead maps the sequence of each rejected event to its reason code:
	// what the dead-letter stream must hold, with that Sharesd-Reason-Code.
	Dead map[uint64]string
}

// New returns an empty model that deduplicates event ids over horizon.
func New(horizon time.Duration) *Model {
	return &Model{Horizon: horizon, Renders: map[string]*Render{}, Bases: map[string]string{},
		Keys: map[string]*Key{}, owners: map[string]string{}, projSeen: map[string]map[string]time.Time{}, Rejected: map[string]int{},
		Dead: map[uint64]string{}}
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
	var bad *events.DecodeError
	switch {
	case errors.As(err, &bad):
		m.reject(msg.Seq, bad.Code())
		return
	case err != nil: // Decode rejects with a *DecodeError only
		m.reject(msg.Seq, events.CodeMalformed)
		return
	}
	switch d := ev.Data.(type) {
	case *events.APIKeyCreated:
		// A key id's first creation decides it; a hash owned by an earlier
		// creation leaves the key id without a key.
		m.applyKey(msg, ev, d.KeyID, func(k *Key) {
			if k.Created {
				return
			}
			k.Created = true
			if _, taken := m.owners[d.KeyHash]; taken {
				m.reject(msg.Seq, events.CodeKeyHashTaken)
				return
			}
			k.Hash, k.Env = d.KeyHash, d.Environment
			m.owners[d.KeyHash] = d.KeyID
		})
	case *events.APIKeyRevoked:
		m.applyKey(msg, ev, d.KeyID, func(k *Key) { k.Revoked = true })
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

func (m *Model) applyKey(msg Msg, ev events.Event, id string, f func(*Key)) {
	k := m.Keys[id]
	if k == nil {
		k = &Key{Project: ev.ProjectID}
		m.Keys[id] = k
	}
	if k.Project != ev.ProjectID {
		m.reject(msg.Seq, events.CodeProjectMismatch)
		return
	}
	f(k)
}

func (m *Model) reject(seq uint64, reason string) {
	m.Rejected[reason]++
	m.Dead[seq] = reason
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
		r = &Render{shares: map[string]*events.ShareCreated{}, clicks: map[string]int64{},
			revoked: map[string]*events.ShareRevoked{}, seen: map[string]time.Time{}, pending: map[string]*early{}}
		m.Renders[ev.RenderID] = r
	}
	r.LastSeq = msg.Seq
	registers := ev.Type == events.TypeRenderCreated || ev.Type == events.TypeShareCreated
	switch {
	case r.Project == "" && !registers:
		r.hold(msg, ev, m.Horizon)
		return
	case r.Project == "":
		m.register(r, ev.ProjectID, msg.Time)
	case r.Project != ev.ProjectID:
		m.reject(msg.Seq, events.CodeProjectMismatch)
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
			r.tombstone()
			return
		}
		r.Listed = true
	}
}

// hold keeps an event of an unregistered render apart, for its project.
func (r *Render) hold(msg Msg, ev events.Event, horizon time.Duration) {
	e := r.pending[ev.ProjectID]
	if e == nil {
		e = &early{clicks: map[string]int64{}, revoked: map[string]*events.ShareRevoked{}, seen: map[string]time.Time{}}
		r.pending[ev.ProjectID] = e
	}
	e.seqs = append(e.seqs, msg.Seq)
	if !fresh(e.seen, ev.ID, msg.Time, horizon) {
		return
	}
	switch d := ev.Data.(type) {
	case *events.ShareRevoked:
		if _, ok := e.revoked[d.ShareID]; !ok {
			e.revoked[d.ShareID] = d
		}
	case *events.ShareViewed:
		e.clicks[d.ShareID]++
	default: // render.deleted: the others register
		e.deleted = true
	}
}

// register gives r to project: what it sent before counts, what the other
// projects sent is rejected.
func (m *Model) register(r *Render, project string, now time.Time) {
	r.Project = project
	for p, e := range r.pending {
		if p != project {
			for _, seq := range e.seqs {
				m.reject(seq, events.CodeProjectMismatch)
			}
			continue
		}
		maps.Copy(r.clicks, e.clicks)
		maps.Copy(r.revoked, e.revoked)
		for id, at := range e.seen {
			if !at.Before(now.Truncate(time.Millisecond).Add(-m.Horizon)) {
				r.seen[id] = at
			}
		}
		if e.deleted {
			r.tombstone()
		}
	}
	r.pending = nil
}

// tombstone deletes r's data for good, keeping its project.
func (r *Render) tombstone() {
	*r = Render{Project: r.Project, Deleted: true, LastSeq: r.LastSeq}
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
