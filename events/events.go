// Package events is the wire contract of Craftkit's share events: the
// envelope, the payload of each event type, the subjects they travel on and
// Decode, which checks every field. It is pure Go with no NATS or Redis
// client, so every other package (and the fuzzer) can use it.
package events

import (
	"strings"
	"time"
)

// Streams and subjects of the contract.
const (
	Stream     = "CRAFTKIT"
	Subjects   = "craftkit.>"
	SubjectPre = "craftkit."

	DeadLetterStream   = "CRAFTKIT_DEADLETTER"
	DeadLetterSubjects = "deadletter.craftkit.>"
	DeadLetterPre      = "deadletter."

	// MaxSize is the largest event accepted, in bytes.
	MaxSize = 64 << 10
	// MaxMessage is the longest share message accepted, in characters.
	MaxMessage = 2000
	// MaxID is the longest event id accepted, in characters.
	MaxID = 128
)

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

// Subject is the subject an event of type t about entity travels on.
func Subject(t Type, entity string) string { return SubjectPre + string(t) + "." + entity }

// RenderSubjects are the filters that match every event of one render:
// Decode accepts the render id on the subject in either case.
func RenderSubjects(renderID string) []string {
	lower, upper := strings.ToLower(renderID), strings.ToUpper(renderID)
	subjects := []string{SubjectPre + "render.*." + lower, SubjectPre + "share.*." + lower}
	if upper != lower {
		subjects = append(subjects, SubjectPre+"render.*."+upper, SubjectPre+"share.*."+upper)
	}
	return subjects
}

// Event is one decoded, validated event. Data holds a pointer to the payload
// type of its Type: *ShareCreated, *ShareRevoked, *ShareViewed,
// *APIKeyCreated, *APIKeyRevoked, *ProjectUpdated, or *Empty for the render
// events.
type Event struct {
	ID         string
	Type       Type
	OccurredAt time.Time
	ProjectID  string // lowercase UUID
	RenderID   string // lowercase UUID; render and share events only
	Data       any
}

// Entity is the id at the end of the event's subject: the render id for
// render and share events, the key id for apikey events, the project id for
// project events.
func (e Event) Entity() string {
	switch {
	case e.Type.RenderScoped():
		return e.RenderID
	case e.Type == TypeAPIKeyCreated:
		return e.Data.(*APIKeyCreated).KeyID
	case e.Type == TypeAPIKeyRevoked:
		return e.Data.(*APIKeyRevoked).KeyID
	default:
		return e.ProjectID
	}
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
// hex SHA-256 of the whole plaintext key; the plaintext never travels.
type APIKeyCreated struct {
	KeyID       string
	KeyHash     string
	Environment string // "live" or "test"
}

// APIKeyRevoked is the payload of apikey.revoked.
type APIKeyRevoked struct {
	KeyID string
}

// ProjectUpdated is the payload of project.updated. ShareBase is nil when the
// project uses the default share domain; it never ends with a slash.
type ProjectUpdated struct {
	ShareBase *string
}

// A DecodeError explains why an event was rejected. Field is a JSON path
// such as "data.shareId" ("subject" for the subject, "$" for the whole
// message); Reason is written for an operator.
type DecodeError struct{ Field, Reason string }

func (e *DecodeError) Error() string { return "events: " + e.Field + ": " + e.Reason }

// TimeFormat is how every time leaves the service: UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Millis is t truncated to the millisecond, as milliseconds since the epoch.
func Millis(t time.Time) int64 { return t.Truncate(time.Millisecond).UnixMilli() }

// FormatMillis renders milliseconds since the epoch in TimeFormat.
func FormatMillis(ms int64) string { return time.UnixMilli(ms).UTC().Format(TimeFormat) }

// AppendMillis appends milliseconds since the epoch in TimeFormat.
func AppendMillis(dst []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(dst, TimeFormat)
}
