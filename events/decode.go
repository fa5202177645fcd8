package events

import (
	"encoding/json"
	"errors"
	"fmt"
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
	ev, err := decode(data)
	if err != nil {
		return Event{}, err
	}
	if err := checkSubject(subject, ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// DecodeBody is Decode for a publisher, who has no subject yet: it checks
// everything but the subject, and the event's Subject is the one to send it
// on (Decode accepts it). One pass over data gives the subject, the message
// id (the event's ID) and the check.
func DecodeBody(data []byte) (Event, error) {
	ev, err := decode(data)
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// decode is Decode without the subject check. It returns a *DecodeError so
// that callers turn it into an error only when it is not nil.
func decode(data []byte) (Event, *DecodeError) {
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

// checkSubject reports whether subject is the one ev travels on. A UUID
// entity may come in any case; a key id must match exactly.
func checkSubject(subject string, ev Event) *DecodeError {
	if !utf8.ValidString(subject) {
		return &DecodeError{Field: "subject", Reason: "invalid UTF-8"}
	}
	entity, uuid := ev.entity()
	tail, ok := strings.CutPrefix(subject, Subject(ev.Type, ""))
	match := tail == entity
	if uuid {
		match = IsUUID(tail) && strings.ToLower(tail) == entity
	}
	if ok && match {
		return nil
	}
	return &DecodeError{Field: "subject", Reason: fmt.Sprintf("got %s, want %s", quoteSubject(subject), quoteSubject(ev.Subject()))}
}
