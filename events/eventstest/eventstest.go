// Package eventstest builds contract events for tests: a well-formed event
// of each type, changed member by member with With, encoded as a publisher
// encodes it (Body), on the subject events' rules give it (Subject), with
// its id as the Nats-Msg-Id. Every package's tests build their events
// here, so a change of the contract changes one file of test support.
package eventstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"testing"

	"github.com/craftkit/sharesd/events"
)

// OccurredAt is the occurredAt of every event built here.
const OccurredAt = "2026-06-05T10:00:00Z"

// ViewedAt is the viewedAt of every share.viewed built here.
const ViewedAt = "2026-06-05T12:00:00Z"

// An Event is one contract event before it is encoded. The builders give
// it a new random ID and the data of a well-formed event of its type.
type Event struct {
	ID      string // the envelope's id, and the Nats-Msg-Id it is published with
	Type    events.Type
	Project string
	Render  string         // render and share events
	Key     string         // apikey events: the key id, which their subject ends with
	Data    map[string]any // the members of the data object; nil is {}
}

// With returns a copy of e with data member k set to v (nil for null).
func (e Event) With(k string, v any) Event {
	e.Data = maps.Clone(e.Data)
	if e.Data == nil {
		e.Data = map[string]any{}
	}
	e.Data[k] = v
	return e
}

// WithID returns a copy of e with id id: the same id twice is the same
// event, published again.
func (e Event) WithID(id string) Event { e.ID = id; return e }

// Subject is the subject a publisher sends e on, by events' rules (see
// events.Event.Subject).
func (e Event) Subject() string {
	ev := events.Event{Type: e.Type, ProjectID: e.Project, RenderID: e.Render}
	switch e.Type {
	case events.TypeAPIKeyCreated:
		ev.Data = &events.APIKeyCreated{KeyID: e.Key}
	case events.TypeAPIKeyRevoked:
		ev.Data = &events.APIKeyRevoked{KeyID: e.Key}
	}
	return ev.Subject()
}

// Body is e's JSON, occurring at OccurredAt: Envelope, encoded.
func (e Event) Body() []byte {
	b, err := json.Marshal(e.Envelope())
	if err != nil {
		panic(fmt.Sprintf("eventstest: %s: %v", e.Type, err)) // a test bug: a data member that does not marshal
	}
	return b
}

// Envelope is the JSON object Body encodes, as a map a test may change to
// make a malformed event (a missing member, another type). Its "data" is a
// copy of e.Data.
func (e Event) Envelope() map[string]any {
	data := maps.Clone(e.Data)
	if data == nil {
		data = map[string]any{}
	}
	m := map[string]any{"id": e.ID, "type": string(e.Type), "occurredAt": OccurredAt, "projectId": e.Project, "data": data}
	if e.Type.RenderScoped() {
		m["renderId"] = e.Render
	}
	return m
}

// Decode decodes e from its subject with events.Decode, as the projector
// does, and fails the test if it is rejected.
func (e Event) Decode(t testing.TB) events.Event {
	t.Helper()
	ev, err := events.Decode(e.Subject(), e.Body())
	if err != nil {
		t.Fatalf("eventstest: decode %s %s: %v", e.Type, e.ID, err)
	}
	return ev
}

func RenderCreated(project, render string) Event {
	return Event{ID: NewID(), Type: events.TypeRenderCreated, Project: project, Render: render}
}

func RenderDeleted(project, render string) Event {
	return Event{ID: NewID(), Type: events.TypeRenderDeleted, Project: project, Render: render}
}

// ShareCreated is a link share created at createdAt, with null email,
// message and expiry and the token "cks_"+share; change members with With.
func ShareCreated(project, render, share, createdAt string) Event {
	return Event{ID: NewID(), Type: events.TypeShareCreated, Project: project, Render: render, Data: map[string]any{
		"shareId": share, "channel": "link", "recipientEmail": nil, "message": nil,
		"expiresAt": nil, "createdAt": createdAt, "shareToken": "cks_" + share,
	}}
}

// ShareRevoked revokes share at revokedAt; reason is a string or nil.
func ShareRevoked(project, render, share, revokedAt string, reason any) Event {
	return Event{ID: NewID(), Type: events.TypeShareRevoked, Project: project, Render: render, Data: map[string]any{
		"shareId": share, "revokedAt": revokedAt, "reason": reason,
	}}
}

// ShareViewed is one view of share at ViewedAt.
func ShareViewed(project, render, share string) Event {
	return Event{ID: NewID(), Type: events.TypeShareViewed, Project: project, Render: render, Data: map[string]any{
		"shareId": share, "viewedAt": ViewedAt,
	}}
}

// APIKeyCreated registers the plaintext key under keyID. It carries only
// the key's hash (events.KeyHash), as the contract says; set another
// keyHash with With.
func APIKeyCreated(project, keyID, key, env string) Event {
	return Event{ID: NewID(), Type: events.TypeAPIKeyCreated, Project: project, Key: keyID, Data: map[string]any{
		"keyId": keyID, "keyHash": events.KeyHash(key), "environment": env,
	}}
}

func APIKeyRevoked(project, keyID string) Event {
	return Event{ID: NewID(), Type: events.TypeAPIKeyRevoked, Project: project, Key: keyID, Data: map[string]any{"keyId": keyID}}
}

// ProjectUpdated sets the project's share base; nil reverts to the default.
func ProjectUpdated(project string, base any) Event {
	return Event{ID: NewID(), Type: events.TypeProjectUpdated, Project: project, Data: map[string]any{"shareBase": base}}
}

// NewUUID returns a random version 4 UUID in lowercase.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return uuid(b)
}

// SeededUUID returns a version 4 UUID drawn from rng, so that a test run
// again with the same seed makes the same ids.
func SeededUUID(rng *mrand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return uuid(b)
}

func uuid(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// NewID returns a new event id, "ev-" and a random UUID.
func NewID() string { return "ev-" + NewUUID() }

// UUID is a valid UUID distinct for each n ≥ 0, for ids a test numbers.
func UUID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }
