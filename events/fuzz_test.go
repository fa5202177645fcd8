package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecode feeds Decode arbitrary subjects and messages, starting from
// the corpus in testdata/fuzz/FuzzDecode and the valid message of every
// type. Decode must not panic, must reject with a *DecodeError, and must
// only accept events that hold the contract and survive a round trip.
func FuzzDecode(f *testing.F) {
	for _, typ := range Types {
		subject, data := wire(typ)
		f.Add(subject, []byte(data))
	}
	subject, data := wire(TypeShareCreated)
	f.Add(strings.ToUpper(subject), []byte(data))
	f.Add(subject, []byte(strings.ReplaceAll(data, `"Take a look"`, `"\ud83d\ude00 \u2028 <b>"`)))
	f.Add(subject, []byte(`{"id":"evt-1","id":"evt-2"}`))
	f.Add("", []byte(nil))

	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		ev, err := Decode(subject, data)
		checkSyntax(t, data, err)
		checkBody(t, data, ev, err)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %T %v, want a *DecodeError", err, err)
			}
			if de.Field == "" || de.Reason == "" {
				t.Fatalf("Decode error %#v has an empty Field or Reason", de)
			}
			if !utf8.ValidString(de.Field) || !utf8.ValidString(de.Reason) {
				t.Fatalf("Decode error %q is not valid UTF-8", de)
			}
			if len(de.Field) > len("data.")+maxEcho {
				t.Fatalf("Decode error Field %q is too long", de.Field)
			}
			return
		}
		if !utf8.Valid(data) || !utf8.ValidString(subject) {
			t.Fatalf("Decode accepted invalid UTF-8: %s", dump(ev))
		}
		checkEvent(t, subject, ev)
		checkEnvelope(t, data, ev)
		checkRoundTrip(t, ev)
	})
}

// checkBody checks DecodeBody against Decode's answer ev, err: the same
// event or rejection, except that it never judges the subject, and the
// subject of what it accepts is one Decode accepts.
func checkBody(t *testing.T, data []byte, ev Event, err error) {
	t.Helper()
	body, berr := DecodeBody(data)
	var de *DecodeError
	switch {
	case errors.As(err, &de) && de.Field == "subject":
		if berr != nil {
			t.Fatalf("Decode rejected only the subject, DecodeBody: %v", berr)
		}
	case err != nil:
		if berr == nil || berr.Error() != err.Error() {
			t.Fatalf("Decode error = %v, DecodeBody error = %v", err, berr)
		}
		return
	case berr != nil || !reflect.DeepEqual(body, ev):
		t.Fatalf("Decode = %s; DecodeBody = %s, %v", dump(ev), dump(body), berr)
	}
	if _, err := Decode(body.Subject(), data); err != nil {
		t.Fatalf("Decode on the event's own Subject: %v", err)
	}
}

// checkSyntax checks that Decode's own JSON scan agrees with encoding/json:
// a message of at most MaxSize bytes is refused as not valid JSON if and
// only if json.Valid refuses it, and for the same reason.
func checkSyntax(t *testing.T, data []byte, err error) {
	t.Helper()
	if len(data) > MaxSize {
		return
	}
	var de *DecodeError
	invalid := errors.As(err, &de) && de.Field == "$" && strings.HasPrefix(de.Reason, "not valid JSON")
	if valid := json.Valid(data); invalid == valid {
		t.Fatalf("json.Valid = %t, Decode error = %v", valid, err)
	}
	if !invalid {
		return
	}
	var syntax *json.SyntaxError
	if !errors.As(json.Unmarshal(data, new(struct{})), &syntax) {
		t.Fatalf("encoding/json gives no syntax error, Decode error = %v", err)
	}
	if at := fmt.Sprintf("(at byte %d)", syntax.Offset); !strings.HasSuffix(de.Reason, at) {
		t.Fatalf("Decode error = %v, want it %s", err, at)
	}
}

// checkEnvelope checks the envelope of an accepted event against
// encoding/json's reading of data: same members, the last of a name wins.
func checkEnvelope(t *testing.T, data []byte, ev Event) {
	t.Helper()
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	var id, typ, project string
	for _, m := range []struct {
		key string
		v   *string
	}{{"id", &id}, {"type", &typ}, {"projectId", &project}} {
		if err := json.Unmarshal(env[m.key], m.v); err != nil {
			t.Fatalf("encoding/json %s: %v", m.key, err)
		}
	}
	if ev.ID != id || string(ev.Type) != typ || ev.ProjectID != strings.ToLower(project) {
		t.Fatalf("Decode read id %q, type %q, projectId %q; encoding/json %q, %q, %q", ev.ID, ev.Type, ev.ProjectID, id, typ, project)
	}
}

var (
	lowerUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	keyHash   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// checkEvent checks that an accepted event holds the contract.
func checkEvent(t *testing.T, subject string, ev Event) {
	t.Helper()
	if !ev.Type.Known() {
		t.Fatalf("Type %q is unknown", ev.Type)
	}
	if n := utf8.RuneCountInString(ev.ID); n < 1 || n > MaxID {
		t.Fatalf("ID has %d characters", n)
	}
	if !lowerUUID.MatchString(ev.ProjectID) {
		t.Fatalf("ProjectID %q is not a lowercase UUID", ev.ProjectID)
	}
	if scoped := ev.Type.RenderScoped(); scoped && !lowerUUID.MatchString(ev.RenderID) || !scoped && ev.RenderID != "" {
		t.Fatalf("%s has RenderID %q", ev.Type, ev.RenderID)
	}
	checkPayload(t, ev)
	want := strings.ToLower(subject)
	if ev.Type == TypeAPIKeyCreated || ev.Type == TypeAPIKeyRevoked {
		want = subject // key ids are case-sensitive
	}
	if got := Subject(ev.Type, ev.Entity()); got != want {
		t.Fatalf("Subject = %q, want %q", got, want)
	}
}

// checkPayload checks that ev.Data is the payload of ev.Type and holds the
// contract.
func checkPayload(t *testing.T, ev Event) {
	t.Helper()
	ok := true
	switch p := ev.Data.(type) {
	case *Empty:
		ok = ev.Type == TypeRenderCreated || ev.Type == TypeRenderDeleted
	case *ShareCreated:
		ok = ev.Type == TypeShareCreated && p.ShareID != "" && p.ShareToken != "" &&
			(p.Channel == "link" || p.Channel == "email") &&
			(p.Message == nil || utf8.RuneCountInString(*p.Message) <= MaxMessage)
	case *ShareRevoked:
		ok = ev.Type == TypeShareRevoked && p.ShareID != ""
	case *ShareViewed:
		ok = ev.Type == TypeShareViewed && p.ShareID != ""
	case *APIKeyCreated:
		ok = ev.Type == TypeAPIKeyCreated && p.KeyID != "" && !strings.ContainsAny(p.KeyID, ".*> \t\r\n") &&
			keyHash.MatchString(p.KeyHash) &&
			(p.Environment == "live" || p.Environment == "test")
	case *APIKeyRevoked:
		ok = ev.Type == TypeAPIKeyRevoked && p.KeyID != "" && !strings.ContainsAny(p.KeyID, ".*> \t\r\n")
	case *ProjectUpdated:
		ok = ev.Type == TypeProjectUpdated &&
			(p.ShareBase == nil || (strings.HasPrefix(*p.ShareBase, "http") && !strings.HasSuffix(*p.ShareBase, "/")))
	default:
		ok = false
	}
	if !ok {
		t.Fatalf("%s has a bad payload: %s", ev.Type, dump(ev))
	}
}

// checkRoundTrip encodes ev again and checks that it decodes to the same
// event: Decode is idempotent on what it accepts.
func checkRoundTrip(t *testing.T, ev Event) {
	t.Helper()
	data := encode(t, ev)
	if len(data) > MaxSize {
		return // re-encoding escapes some characters and may grow a message
	}
	again, err := Decode(Subject(ev.Type, ev.Entity()), data)
	if err != nil {
		t.Fatalf("re-encoded event rejected: %v\n%s", err, data)
	}
	if got := encode(t, again); !bytes.Equal(got, data) {
		t.Fatalf("round trip changed the event:\n%s\nbecame\n%s", data, got)
	}
}

// encode writes ev as a message of the contract.
func encode(t *testing.T, ev Event) []byte {
	t.Helper()
	stamp := func(tm *time.Time) any {
		if tm == nil {
			return nil
		}
		return tm.Format(time.RFC3339Nano)
	}
	data := map[string]any{}
	switch p := ev.Data.(type) {
	case *ShareCreated:
		data = map[string]any{"shareId": p.ShareID, "channel": p.Channel, "recipientEmail": p.RecipientEmail,
			"message": p.Message, "expiresAt": stamp(p.ExpiresAt), "createdAt": stamp(&p.CreatedAt), "shareToken": p.ShareToken}
	case *ShareRevoked:
		data = map[string]any{"shareId": p.ShareID, "revokedAt": stamp(&p.RevokedAt), "reason": p.Reason}
	case *ShareViewed:
		data = map[string]any{"shareId": p.ShareID, "viewedAt": stamp(&p.ViewedAt)}
	case *APIKeyCreated:
		data = map[string]any{"keyId": p.KeyID, "keyHash": p.KeyHash, "environment": p.Environment}
	case *APIKeyRevoked:
		data = map[string]any{"keyId": p.KeyID}
	case *ProjectUpdated:
		data = map[string]any{"shareBase": p.ShareBase}
	}
	msg := map[string]any{"id": ev.ID, "type": ev.Type, "occurredAt": stamp(&ev.OccurredAt),
		"projectId": ev.ProjectID, "data": data}
	if ev.RenderID != "" {
		msg["renderId"] = ev.RenderID
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(msg); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
