package events

import (
	"fmt"
	"strings"
	"time"
)

// This file is the one place in events that knows each event type: its
// name, its payload, how the payload is decoded and what its subject ends
// with. doc.go says how to add a type.

// Type is an event type such as "share.created".
type Type string

// The event types of the contract. The payload types drop the prefix:
// TypeShareCreated carries a *ShareCreated.
const (
	TypeRenderCreated  Type = "render.created"
	TypeRenderDeleted  Type = "render.deleted"
	TypeShareCreated   Type = "share.created"
	TypeShareRevoked   Type = "share.revoked"
	TypeShareViewed    Type = "share.viewed"
	TypeAPIKeyCreated  Type = "apikey.created"
	TypeAPIKeyRevoked  Type = "apikey.revoked"
	TypeProjectUpdated Type = "project.updated"
)

// Types lists every known event type.
var Types = []Type{TypeRenderCreated, TypeRenderDeleted, TypeShareCreated, TypeShareRevoked, TypeShareViewed, TypeAPIKeyCreated, TypeAPIKeyRevoked, TypeProjectUpdated}

// Known reports whether t is a type of the contract.
func (t Type) Known() bool {
	for _, k := range Types {
		if t == k {
			return true
		}
	}
	return false
}

// RenderScoped reports whether events of type t belong to a render (their
// subject ends with the render id and they carry renderId).
func (t Type) RenderScoped() bool {
	return strings.HasPrefix(string(t), "render.") || strings.HasPrefix(string(t), "share.")
}

// Empty is the payload of render.created and render.deleted.
type Empty struct{}

// ShareCreated is the payload of share.created. Nil pointers are JSON null.
type ShareCreated struct {
	ShareID        string
	Channel        string // "link" or "email"
	RecipientEmail *string
	Message        *string
	ExpiresAt      *time.Time
	CreatedAt      time.Time
	ShareToken     string
}

// ShareRevoked is the payload of share.revoked.
type ShareRevoked struct {
	ShareID   string
	RevokedAt time.Time
	Reason    *string
}

// ShareViewed is the payload of share.viewed.
type ShareViewed struct {
	ShareID  string
	ViewedAt time.Time
}

// APIKeyCreated is the payload of apikey.created. KeyHash is the lowercase
// hex SHA-256 of the whole plaintext key (see KeyHash); the plaintext never
// travels.
type APIKeyCreated struct {
	KeyID       string
	KeyHash     string
	Environment string // EnvLive or EnvTest
}

// APIKeyRevoked is the payload of apikey.revoked.
type APIKeyRevoked struct {
	KeyID string
}

// ProjectUpdated is the payload of project.updated. ShareBase is nil when the
// project uses the default share domain; it never ends with a slash (see
// ShareBase).
type ProjectUpdated struct {
	ShareBase *string
}

// payload reads the data of an event of type t.
func payload(t Type, d *fields) any {
	switch t {
	case TypeRenderCreated, TypeRenderDeleted:
		return &Empty{}
	case TypeShareCreated:
		return &ShareCreated{
			ShareID:        d.str("shareId", maxShareID),
			Channel:        d.oneOf("channel", "link", "email"),
			RecipientEmail: d.nullableStr("recipientEmail", anyLength),
			Message:        d.nullableStr("message", MaxMessage),
			ExpiresAt:      d.nullableTimestamp("expiresAt"),
			CreatedAt:      d.timestamp("createdAt"),
			ShareToken:     d.str("shareToken", maxShareToken),
		}
	case TypeShareRevoked:
		return &ShareRevoked{
			ShareID:   d.str("shareId", maxShareID),
			RevokedAt: d.timestamp("revokedAt"),
			Reason:    d.nullableStr("reason", anyLength),
		}
	case TypeShareViewed:
		return &ShareViewed{
			ShareID:  d.str("shareId", maxShareID),
			ViewedAt: d.timestamp("viewedAt"),
		}
	case TypeAPIKeyCreated:
		return &APIKeyCreated{
			KeyID:       d.keyID(),
			KeyHash:     d.keyHash(),
			Environment: d.oneOf("environment", EnvLive, EnvTest),
		}
	case TypeAPIKeyRevoked:
		return &APIKeyRevoked{KeyID: d.keyID()}
	case TypeProjectUpdated:
		return &ProjectUpdated{ShareBase: d.shareBase()}
	}
	// A type was added to Types without a payload here.
	d.err = &DecodeError{Field: "type", Reason: fmt.Sprintf("no decoder for event type %q", t)}
	return nil
}

// entity returns the id at the end of e's subject, and whether it is a
// UUID, which a subject may carry in any case (a key id must match
// exactly): the key id for apikey events, the render id for render and
// share events, the project id for the others.
func (e Event) entity() (id string, uuid bool) {
	switch d := e.Data.(type) {
	case *APIKeyCreated:
		return d.KeyID, false
	case *APIKeyRevoked:
		return d.KeyID, false
	}
	if e.Type.RenderScoped() {
		return e.RenderID, true
	}
	return e.ProjectID, true
}
