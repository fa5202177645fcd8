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

// Subject is the subject an event of type t about entity travels on:
// craftkit.<type>.<entity>. Subject(t, "*") is a filter for every event
// of type t.
func Subject(t Type, entity string) string { return SubjectPre + string(t) + "." + entity }

// ProjectSubjects is the filter that matches every project event, of any
// project.* type and any project.
const ProjectSubjects = SubjectPre + "project.*.*"

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
	id, _ := e.entity()
	return id
}

// Subject is the subject e travels on, with UUIDs in lowercase: the one a
// publisher sends it on and that filters such as RenderSubjects match.
func (e Event) Subject() string { return Subject(e.Type, e.Entity()) }

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
