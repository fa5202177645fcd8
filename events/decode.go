package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Limits of payload fields, in characters.
const (
	maxShareID    = 128
	maxKeyID      = 128
	maxShareToken = 512
	// anyLength is no limit: no string in a message of MaxSize bytes is
	// longer.
	anyLength = MaxSize
)

// Decode checks one message of the contract, received on subject, and
// returns the event it carries. Every rejection is a *DecodeError naming the
// first problem found, in this order: size and JSON shape ("$"), text that
// is not valid as sent (invalid UTF-8 or a lone surrogate escape, in any
// string, known or not: see scan), the envelope fields, data and its
// fields, and last the subject, which must be valid UTF-8 and the one the
// event's type and entity travel on. Unknown fields are otherwise ignored.
// Decode never puts a key hash, or the bytes of invalid text, in an error.
func Decode(subject string, data []byte) (Event, error) {
	if len(data) > MaxSize {
		return Event{}, &DecodeError{Field: "$", Reason: fmt.Sprintf("got %d bytes, want at most %d", len(data), MaxSize)}
	}
	env, err := parseObject(data)
	if err != nil {
		return Event{}, err
	}
	ev := Event{
		ID:         env.str("id", MaxID),
		Type:       env.eventType(),
		OccurredAt: env.timestamp("occurredAt"),
		ProjectID:  env.uuid("projectId"),
	}
	if ev.Type.RenderScoped() {
		ev.RenderID = env.uuid("renderId")
	}
	d := env.object("data")
	if env.err != nil {
		return Event{}, env.err
	}
	ev.Data = payload(ev.Type, d)
	if d.err != nil {
		return Event{}, d.err
	}
	if err := checkSubject(subject, ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// parseObject reads a whole message, which must be one JSON object, in one
// pass. When it is not valid JSON, encoding/json says why.
func parseObject(data []byte) (*fields, *DecodeError) {
	env, valid, bad := scan(data)
	if !valid {
		err := json.Unmarshal(data, new(struct{}))
		var syntax *json.SyntaxError
		switch {
		case errors.As(err, &syntax) && invalidUTF8At(data, int(syntax.Offset)-1):
			return nil, &DecodeError{Field: "$", Reason: fmt.Sprintf("not valid JSON: invalid UTF-8 outside a string (at byte %d)", syntax.Offset)}
		case errors.As(err, &syntax):
			return nil, &DecodeError{Field: "$", Reason: fmt.Sprintf("not valid JSON: %v (at byte %d)", syntax, syntax.Offset)}
		}
		return nil, &DecodeError{Field: "$", Reason: "not valid JSON"} // scan and encoding/json disagree
	}
	if env == nil {
		return nil, &DecodeError{Field: "$", Reason: "got " + kind(data) + ", want object"}
	}
	if bad != nil {
		return nil, bad
	}
	return &fields{members: env}, nil
}

// invalidUTF8At reports whether data[i] starts no valid UTF-8 character.
func invalidUTF8At(data []byte, i int) bool {
	if i < 0 || i >= len(data) {
		return false
	}
	r, size := utf8.DecodeRune(data[i:])
	return r == utf8.RuneError && size == 1
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
			Environment: d.oneOf("environment", "live", "test"),
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

// checkSubject reports whether subject is the one ev travels on. A UUID
// entity may come in any case; a key id must match exactly.
func checkSubject(subject string, ev Event) *DecodeError {
	if !utf8.ValidString(subject) {
		return &DecodeError{Field: "subject", Reason: "invalid UTF-8"}
	}
	entity := ev.Entity()
	tail, ok := strings.CutPrefix(subject, Subject(ev.Type, ""))
	match := IsUUID(tail) && strings.ToLower(tail) == entity
	if ev.Type == TypeAPIKeyCreated || ev.Type == TypeAPIKeyRevoked {
		match = tail == entity
	}
	if ok && match {
		return nil
	}
	return &DecodeError{Field: "subject", Reason: fmt.Sprintf("got %s, want %s", quoteSubject(subject), quoteSubject(Subject(ev.Type, entity)))}
}

// checkShareBase returns why s is not a valid share base, or "".
func checkShareBase(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "not a valid URL"
	case u.Scheme == "":
		return "got a relative URL, want an absolute http or https URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("got scheme %s, want http or https", quote(u.Scheme))
	case u.Hostname() == "":
		return "has no host, want an absolute http or https URL"
	case u.User != nil:
		return "has user info, want none"
	case strings.ContainsAny(s, "?#"):
		return "has a query or fragment, want neither"
	case strings.HasSuffix(s, "//"):
		return `ends with "//", want at most one trailing slash`
	}
	return ""
}
