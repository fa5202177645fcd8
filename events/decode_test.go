package events

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	projectID  = "0b5e6c1a-3f7d-4c2e-9a8b-1d2e3f4a5b6c"
	renderID   = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	otherID    = "11111111-2222-4333-8444-555555555555"
	occurredAt = "2026-06-05T12:00:00.123456789+02:00"
	// testHash is the SHA-256 of "test", standing in for a key hash.
	testHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

// wire returns a valid message of type t: its subject and its JSON.
func wire(t Type) (subject, data string) {
	entity, payload := renderID, "{}"
	switch t {
	case TypeShareCreated:
		payload = `{"shareId":"shr_1","channel":"email","recipientEmail":"ada@example.com","message":"Take a look",` +
			`"expiresAt":"2026-07-05T10:00:00Z","createdAt":"2026-06-05T10:00:00Z","shareToken":"tok_abc"}`
	case TypeShareRevoked:
		payload = `{"shareId":"shr_1","revokedAt":"2026-06-06T10:00:00Z","reason":"sent to the wrong person"}`
	case TypeShareViewed:
		payload = `{"shareId":"shr_1","viewedAt":"2026-06-05T11:00:00Z"}`
	case TypeAPIKeyCreated:
		entity, payload = "key_1", `{"keyId":"key_1","keyHash":"`+testHash+`","environment":"live"}`
	case TypeAPIKeyRevoked:
		entity, payload = "key_1", `{"keyId":"key_1"}`
	case TypeProjectUpdated:
		entity, payload = projectID, `{"shareBase":"https://share.example.com/"}`
	}
	data = `{"id":"evt-1","type":"` + string(t) + `","occurredAt":"` + occurredAt + `","projectId":"` + projectID +
		`","renderId":"` + renderID + `","data":` + payload + `}`
	return Subject(t, entity), data
}

// edit returns message t with its JSON changed by fn.
func edit(t testing.TB, typ Type, fn func(m map[string]any)) (subject, data string) {
	t.Helper()
	subject, data = wire(typ)
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return subject, string(b)
}

// set returns an edit that sets path ("id", "data.shareId") to v.
func set(path string, v any) func(map[string]any) {
	return func(m map[string]any) {
		if top, key, ok := strings.Cut(path, "."); ok {
			m = m[top].(map[string]any)
			path = key
		}
		m[path] = v
	}
}

// del returns an edit that deletes path.
func del(path string) func(map[string]any) {
	return func(m map[string]any) {
		if top, key, ok := strings.Cut(path, "."); ok {
			m = m[top].(map[string]any)
			path = key
		}
		delete(m, path)
	}
}

// pad returns data grown to exactly n bytes by an unknown top-level field.
func pad(data string, n int) string {
	const field = `"pad":"",`
	return `{"pad":"` + strings.Repeat("x", n-len(data)-len(field)) + `",` + data[1:]
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// want returns the event wire(typ) decodes to.
func want(t testing.TB, typ Type) Event {
	t.Helper()
	ev := Event{ID: "evt-1", Type: typ, OccurredAt: mustTime(t, occurredAt), ProjectID: projectID, RenderID: renderID}
	switch typ {
	case TypeRenderCreated, TypeRenderDeleted:
		ev.Data = &Empty{}
	case TypeShareCreated:
		ev.Data = &ShareCreated{
			ShareID: "shr_1", Channel: "email", RecipientEmail: new("ada@example.com"), Message: new("Take a look"),
			ExpiresAt: new(mustTime(t, "2026-07-05T10:00:00Z")), CreatedAt: mustTime(t, "2026-06-05T10:00:00Z"), ShareToken: "tok_abc",
		}
	case TypeShareRevoked:
		ev.Data = &ShareRevoked{ShareID: "shr_1", RevokedAt: mustTime(t, "2026-06-06T10:00:00Z"), Reason: new("sent to the wrong person")}
	case TypeShareViewed:
		ev.Data = &ShareViewed{ShareID: "shr_1", ViewedAt: mustTime(t, "2026-06-05T11:00:00Z")}
	case TypeAPIKeyCreated:
		ev.RenderID, ev.Data = "", &APIKeyCreated{KeyID: "key_1", KeyHash: testHash, Environment: "live"}
	case TypeAPIKeyRevoked:
		ev.RenderID, ev.Data = "", &APIKeyRevoked{KeyID: "key_1"}
	case TypeProjectUpdated:
		ev.RenderID, ev.Data = "", &ProjectUpdated{ShareBase: new("https://share.example.com")}
	}
	return ev
}

func TestDecode(t *testing.T) {
	type row struct {
		name          string
		subject, data string
		want          Event
	}
	var tests []row
	for _, typ := range Types {
		subject, data := wire(typ)
		tests = append(tests, row{string(typ), subject, data, want(t, typ)})
	}

	upper := strings.ToUpper
	s, d := wire(TypeShareViewed)
	tests = append(tests, row{"uppercase UUIDs are lowercased",
		strings.Replace(s, renderID, upper(renderID), 1),
		strings.NewReplacer(renderID, upper(renderID), projectID, upper(projectID)).Replace(d),
		want(t, TypeShareViewed)})

	s, d = edit(t, TypeShareCreated, func(m map[string]any) {
		set("data.channel", "link")(m)
		set("data.recipientEmail", nil)(m)
		set("data.message", nil)(m)
		set("data.expiresAt", nil)(m)
	})
	ev := want(t, TypeShareCreated)
	ev.Data = &ShareCreated{ShareID: "shr_1", Channel: "link", CreatedAt: mustTime(t, "2026-06-05T10:00:00Z"), ShareToken: "tok_abc"}
	tests = append(tests, row{"share.created with nulls", s, d, ev})

	long := strings.Repeat("é", MaxMessage)
	s, d = edit(t, TypeShareCreated, set("data.message", long))
	ev = want(t, TypeShareCreated)
	ev.Data.(*ShareCreated).Message = &long
	tests = append(tests, row{"message of 2000 runes", s, d, ev})

	s, d = edit(t, TypeShareRevoked, set("data.reason", nil))
	ev = want(t, TypeShareRevoked)
	ev.Data.(*ShareRevoked).Reason = nil
	tests = append(tests, row{"share.revoked without reason", s, d, ev})

	s, d = edit(t, TypeProjectUpdated, set("data.shareBase", nil))
	ev = want(t, TypeProjectUpdated)
	ev.Data = &ProjectUpdated{}
	tests = append(tests, row{"shareBase null", s, d, ev})

	s, d = edit(t, TypeProjectUpdated, set("data.shareBase", "http://x.dev:8080/s/"))
	ev = want(t, TypeProjectUpdated)
	ev.Data = &ProjectUpdated{ShareBase: new("http://x.dev:8080/s")}
	tests = append(tests, row{"shareBase with path", s, d, ev})

	s, d = edit(t, TypeProjectUpdated, set("data.shareBase", "https://x.dev"))
	ev = want(t, TypeProjectUpdated)
	ev.Data = &ProjectUpdated{ShareBase: new("https://x.dev")}
	tests = append(tests, row{"shareBase without slash", s, d, ev})

	s, d = edit(t, TypeAPIKeyCreated, set("renderId", "not a uuid"))
	tests = append(tests, row{"renderId ignored for apikey", s, d, want(t, TypeAPIKeyCreated)})
	s, d = edit(t, TypeProjectUpdated, del("renderId"))
	tests = append(tests, row{"renderId optional for project", s, d, want(t, TypeProjectUpdated)})

	s, d = edit(t, TypeRenderDeleted, func(m map[string]any) {
		set("version", 2)(m)
		set("data.extra", []int{1})(m)
	})
	tests = append(tests, row{"unknown fields ignored", s, d, want(t, TypeRenderDeleted)})

	s, d = wire(TypeRenderCreated)
	tests = append(tests, row{"exactly 64 KiB", s, pad(d, MaxSize), want(t, TypeRenderCreated)})

	s, d = edit(t, TypeRenderCreated, set("id", strings.Repeat("é", MaxID)))
	ev = want(t, TypeRenderCreated)
	ev.ID = strings.Repeat("é", MaxID)
	tests = append(tests, row{"id of 128 runes", s, d, ev})

	s, d = edit(t, TypeRenderCreated, set("occurredAt", "2026-06-05T10:00:00-07:30"))
	ev = want(t, TypeRenderCreated)
	ev.OccurredAt = mustTime(t, "2026-06-05T10:00:00-07:30")
	tests = append(tests, row{"occurredAt without fraction", s, d, ev})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.subject, []byte(tt.data))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Decode =\n%s\nwant\n%s", dump(got), dump(tt.want))
			}
		})
	}
}

// dump shows an event, following the pointers of its payload.
func dump(ev Event) string {
	b, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestDecodeRejects(t *testing.T) {
	type row struct {
		name          string
		subject, data string
		field         string
	}
	var tests []row
	// bad adds a row: message typ changed by fn, rejected at field.
	bad := func(name string, typ Type, fn func(map[string]any), field string) {
		s, d := edit(t, typ, fn)
		tests = append(tests, row{name, s, d, field})
	}
	subject, data := wire(TypeRenderCreated)
	for _, tt := range []row{
		{"empty", subject, "", "$"},
		{"not JSON", subject, `{"id":`, "$"},
		{"trailing data", subject, data + "x", "$"},
		{"two objects", subject, data + data, "$"},
		{"JSON array", subject, "[" + data + "]", "$"},
		{"JSON null", subject, "null", "$"},
		{"JSON string", subject, `"x"`, "$"},
		{"JSON number", subject, `1`, "$"},
		{"over 64 KiB", subject, pad(data, MaxSize+1), "$"},
	} {
		tests = append(tests, tt)
	}

	// The envelope.
	bad("missing id", TypeRenderCreated, del("id"), "id")
	bad("empty id", TypeRenderCreated, set("id", ""), "id")
	bad("id of 129 runes", TypeRenderCreated, set("id", strings.Repeat("é", MaxID+1)), "id")
	bad("id number", TypeRenderCreated, set("id", 1), "id")
	bad("missing type", TypeRenderCreated, del("type"), "type")
	bad("unknown type", TypeRenderCreated, set("type", "render.updated"), "type")
	bad("type null", TypeRenderCreated, set("type", nil), "type")
	bad("missing occurredAt", TypeRenderCreated, del("occurredAt"), "occurredAt")
	bad("occurredAt date only", TypeRenderCreated, set("occurredAt", "2026-06-05"), "occurredAt")
	bad("occurredAt with space", TypeRenderCreated, set("occurredAt", "2026-06-05 10:00:00Z"), "occurredAt")
	bad("occurredAt number", TypeRenderCreated, set("occurredAt", 1780000000), "occurredAt")
	bad("missing projectId", TypeRenderCreated, del("projectId"), "projectId")
	bad("projectId without hyphens", TypeRenderCreated, set("projectId", strings.ReplaceAll(projectID, "-", "")), "projectId")
	bad("projectId in braces", TypeRenderCreated, set("projectId", "{"+projectID[1:35]+"}"), "projectId")
	bad("projectId not hex", TypeRenderCreated, set("projectId", "0b5e6c1a-3f7d-4c2e-9a8b-1d2e3f4a5b6g"), "projectId")
	bad("missing renderId on share event", TypeShareViewed, del("renderId"), "renderId")
	bad("missing renderId on render event", TypeRenderDeleted, del("renderId"), "renderId")
	bad("renderId null", TypeShareRevoked, set("renderId", nil), "renderId")
	bad("missing data", TypeRenderCreated, del("data"), "data")
	bad("data null", TypeRenderCreated, set("data", nil), "data")
	bad("data array", TypeShareViewed, set("data", []any{}), "data")
	bad("data string", TypeAPIKeyRevoked, set("data", "key_1"), "data")

	// The subject.
	s, d := wire(TypeShareCreated)
	tests = append(tests,
		row{"subject of another type", Subject(TypeShareRevoked, renderID), d, "subject"},
		row{"subject of another render", Subject(TypeShareCreated, otherID), d, "subject"},
		row{"subject with the project id", Subject(TypeShareCreated, projectID), d, "subject"},
		row{"subject in uppercase", strings.ToUpper(s), d, "subject"},
		row{"subject with an extra token", s + ".x", d, "subject"},
		row{"empty subject", "", d, "subject"},
	)
	_, d = wire(TypeAPIKeyRevoked)
	tests = append(tests, row{"key id in another case", Subject(TypeAPIKeyRevoked, "KEY_1"), d, "subject"})
	_, d = wire(TypeProjectUpdated)
	tests = append(tests, row{"project subject with the render id", Subject(TypeProjectUpdated, renderID), d, "subject"})

	// Payloads: every field missing, then ill-typed, then out of range.
	for _, typ := range Types {
		_, d := wire(typ)
		var m struct{ Data map[string]any }
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		for key := range m.Data {
			bad(string(typ)+" missing "+key, typ, del("data."+key), "data."+key)
			bad(string(typ)+" "+key+" number", typ, set("data."+key, 42), "data."+key)
			bad(string(typ)+" "+key+" object", typ, set("data."+key, map[string]any{}), "data."+key)
		}
	}
	for _, key := range []string{"shareId", "channel", "createdAt", "shareToken"} {
		bad(key+" null", TypeShareCreated, set("data."+key, nil), "data."+key)
	}
	bad("empty shareId", TypeShareCreated, set("data.shareId", ""), "data.shareId")
	bad("shareId of 129 runes", TypeShareViewed, set("data.shareId", strings.Repeat("s", 129)), "data.shareId")
	bad("bad channel", TypeShareCreated, set("data.channel", "sms"), "data.channel")
	bad("message of 2001 runes", TypeShareCreated, set("data.message", strings.Repeat("é", MaxMessage+1)), "data.message")
	bad("bad expiresAt", TypeShareCreated, set("data.expiresAt", "tomorrow"), "data.expiresAt")
	bad("bad createdAt", TypeShareCreated, set("data.createdAt", "2026-06-05"), "data.createdAt")
	bad("empty shareToken", TypeShareCreated, set("data.shareToken", ""), "data.shareToken")
	bad("shareToken of 513 runes", TypeShareCreated, set("data.shareToken", strings.Repeat("t", 513)), "data.shareToken")
	bad("revokedAt null", TypeShareRevoked, set("data.revokedAt", nil), "data.revokedAt")
	bad("bad revokedAt", TypeShareRevoked, set("data.revokedAt", "2026-06-06T10:00Z"), "data.revokedAt")
	bad("bad viewedAt", TypeShareViewed, set("data.viewedAt", "2026-06-05T11:00:00"), "data.viewedAt")

	bad("empty keyId", TypeAPIKeyCreated, set("data.keyId", ""), "data.keyId")
	bad("keyId of 129 runes", TypeAPIKeyRevoked, set("data.keyId", strings.Repeat("k", 129)), "data.keyId")
	for _, c := range []string{".", "*", ">", " ", "\t", "\n", "\x00", "\u00a0", "\u2028"} {
		bad("keyId with "+strings.TrimSpace(c), TypeAPIKeyRevoked, set("data.keyId", "key"+c+"1"), "data.keyId")
	}
	bad("uppercase keyHash", TypeAPIKeyCreated, set("data.keyHash", strings.ToUpper(testHash)), "data.keyHash")
	bad("short keyHash", TypeAPIKeyCreated, set("data.keyHash", testHash[:63]), "data.keyHash")
	bad("long keyHash", TypeAPIKeyCreated, set("data.keyHash", testHash+"0"), "data.keyHash")
	bad("keyHash not hex", TypeAPIKeyCreated, set("data.keyHash", testHash[:63]+"g"), "data.keyHash")
	bad("keyHash null", TypeAPIKeyCreated, set("data.keyHash", nil), "data.keyHash")
	bad("bad environment", TypeAPIKeyCreated, set("data.environment", "prod"), "data.environment")
	bad("keyHash as environment", TypeAPIKeyCreated, set("data.environment", testHash), "data.environment")

	for _, base := range []string{
		"", "share.example.com", "/s", "//share.example.com", "ftp://share.example.com", "https:share.example.com",
		"https://", "https:///s", "https://:443", "https://share.example.com?a=1", "https://share.example.com/?",
		"https://share.example.com/#s", "https://u:p@share.example.com", "https://share.example.com//",
		"https://share.example.com:x", "https://share example.com",
	} {
		bad("shareBase "+base, TypeProjectUpdated, set("data.shareBase", base), "data.shareBase")
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Decode(tt.subject, []byte(tt.data))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %+v, %v; want a *DecodeError", ev, err)
			}
			if got, want := de.Field, tt.field; got != want {
				t.Fatalf("Field = %q, want %q (%v)", got, want, err)
			}
			if de.Reason == "" {
				t.Fatal("empty Reason")
			}
			if !reflect.DeepEqual(ev, Event{}) {
				t.Fatalf("Decode returned %+v with an error", ev)
			}
			if strings.Contains(strings.ToLower(err.Error()), testHash) {
				t.Fatal("the error quotes the key hash")
			}
		})
	}
}

// TestDecodeReasons pins a few reasons operators read.
func TestDecodeReasons(t *testing.T) {
	s, d := wire(TypeRenderCreated)
	_, big := wire(TypeRenderCreated)
	big = pad(big, MaxSize+1)
	sc, dc := edit(t, TypeShareCreated, set("data.channel", "sms"))
	sm, dm := edit(t, TypeShareCreated, set("data.shareId", 7))
	sk, dk := edit(t, TypeAPIKeyCreated, set("data.keyHash", testHash[:10]))
	tests := []struct {
		subject, data string
		want          string
	}{
		{s, big, "events: $: got 65537 bytes, want at most 65536"},
		{s, "[]", "events: $: got array, want object"},
		{s, strings.Replace(d, `"id":"evt-1",`, "", 1), "events: id: missing"},
		{sc, dc, `events: data.channel: got "sms", want "link" or "email"`},
		{sm, dm, "events: data.shareId: got number, want string"},
		{sk, dk, "events: data.keyHash: got 10 characters, want 64 lowercase hex digits"},
		{Subject(TypeRenderCreated, otherID), d,
			`events: subject: got "craftkit.render.created.` + otherID + `", want "craftkit.render.created.` + renderID + `"`},
	}
	for _, tt := range tests {
		_, err := Decode(tt.subject, []byte(tt.data))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Decode error = %v, want %s", err, tt.want)
		}
	}
}

// TestDecodeNeverQuotesKeyHash puts a key hash in every field of every
// message in turn: whatever fails, the error must not show it.
func TestDecodeNeverQuotesKeyHash(t *testing.T) {
	for _, typ := range Types {
		_, d := wire(typ)
		var m map[string]any
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		var paths []string
		for key := range m {
			paths = append(paths, key)
		}
		for key := range m["data"].(map[string]any) {
			paths = append(paths, "data."+key)
		}
		for _, path := range paths {
			for _, h := range []string{testHash, strings.ToUpper(testHash), testHash + "0", "x" + testHash} {
				s, d := edit(t, typ, set(path, h))
				if _, err := Decode(s, []byte(d)); err != nil && strings.Contains(strings.ToLower(err.Error()), testHash) {
					t.Errorf("%s with a hash in %s: error quotes it: %v", typ, path, err)
				}
			}
		}
	}
}
