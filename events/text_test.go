package events

import (
	"errors"
	"strings"
	"testing"
)

// swap returns message typ with the first old in its JSON replaced by new,
// byte for byte: unlike edit, it can put invalid UTF-8 in a message.
func swap(t testing.TB, typ Type, old, new string) (subject, data string) {
	t.Helper()
	subject, data = wire(typ)
	if !strings.Contains(data, old) {
		t.Fatalf("%s message has no %s", typ, old)
	}
	return subject, strings.Replace(data, old, new, 1)
}

// TestDecodeRefusesInvalidText puts text that is not valid as sent (invalid
// UTF-8, a lone surrogate escape) in every place of a message: Decode must
// refuse it at the JSON path of the string, without showing the bytes.
// encoding/json alone repairs it into U+FFFD and the old Decode accepted it.
func TestDecodeRefusesInvalidText(t *testing.T) {
	type row struct {
		name          string
		subject, data string
		field         string
	}
	var tests []row
	add := func(name string, typ Type, old, new, field string) {
		s, d := swap(t, typ, old, new)
		tests = append(tests, row{name, s, d, field})
	}
	add("id", TypeRenderCreated, `"evt-1"`, "\"evt-\xff\"", "id")
	add("id truncated character", TypeRenderCreated, `"evt-1"`, "\"evt-\xe2\x82\"", "id")
	add("id overlong encoding", TypeRenderCreated, `"evt-1"`, "\"evt-\xc0\xaf\"", "id")
	add("id surrogate encoded in UTF-8", TypeRenderCreated, `"evt-1"`, "\"evt-\xed\xa0\x80\"", "id")
	add("id lone high surrogate escape", TypeRenderCreated, `"evt-1"`, `"evt-\ud800"`, "id")
	add("id lone low surrogate escape", TypeRenderCreated, `"evt-1"`, `"evt-\udc00"`, "id")
	add("id high surrogate escape then a letter", TypeRenderCreated, `"evt-1"`, `"evt-\ud83dx"`, "id")
	add("id two high surrogate escapes", TypeRenderCreated, `"evt-1"`, `"evt-\ud83d\ud83d"`, "id")
	add("id surrogates in the wrong order", TypeRenderCreated, `"evt-1"`, `"evt-\ude00\ud83d"`, "id")
	add("first of two ids", TypeRenderCreated, `"id":"evt-1"`, "\"id\":\"evt-\xff\",\"id\":\"evt-1\"", "id")
	add("type", TypeRenderCreated, `"render.created"`, "\"render.created\xff\"", "type")
	add("occurredAt", TypeRenderCreated, `"`+occurredAt, "\"\xff"+occurredAt, "occurredAt")
	add("projectId", TypeRenderCreated, `"`+projectID, "\"\xff"+projectID, "projectId")
	add("renderId", TypeShareViewed, `"`+renderID, "\"\xff"+renderID, "renderId")
	add("renderId ignored for apikey", TypeAPIKeyRevoked, `"`+renderID, "\"\xff"+renderID, "renderId")
	add("data.shareId", TypeShareViewed, `"shr_1"`, "\"shr_\xff\"", "data.shareId")
	add("data.message", TypeShareCreated, `"Take a look"`, "\"Take \xff\xfe look\"", "data.message")
	add("data.message lone surrogate escape", TypeShareCreated, `"Take a look"`, `"Take \udfff look"`, "data.message")
	add("data.recipientEmail", TypeShareCreated, `"ada@example.com"`, "\"ada\xff@example.com\"", "data.recipientEmail")
	add("data.reason", TypeShareRevoked, `"sent to`, "\"\xffsent to", "data.reason")
	add("data.keyId", TypeAPIKeyRevoked, `"key_1"`, "\"key_\xff\"", "data.keyId")
	add("data.keyHash", TypeAPIKeyCreated, testHash, testHash[:63]+"\xff", "data.keyHash")
	add("data.shareBase", TypeProjectUpdated, `"https://`, "\"https://\xff", "data.shareBase")
	add("data of the wrong kind", TypeRenderCreated, `"data":{}`, "\"data\":[\"\xff\"]", "data")
	add("unknown member", TypeRenderCreated, `"id"`, "\"version\":\"\xff\",\"id\"", "version")
	add("deep in an unknown member", TypeRenderCreated, `"id"`, "\"x\":[1,{\"y\":[true,\"\xff\"]}],\"id\"", "x")
	add("name deep in an unknown member", TypeRenderCreated, `"id"`, "\"x\":{\"\xff\":1},\"id\"", "x")
	add("unknown member of data", TypeShareViewed, `"shareId"`, "\"extra\":{\"a\":\"\xff\"},\"shareId\"", "data.extra")
	add("unknown member with an escaped name", TypeShareViewed, `"shareId"`, "\"e\\u0078tra\":\"\xff\",\"shareId\"", "data.extra")
	add("unknown member after data ending in null", TypeRenderCreated, `"data":{}`, "\"data\":{\"x\":null},\"y\":\"\xff\"", "y")
	add("unknown member after one ending in a number", TypeRenderCreated, `"id"`, "\"x\":{\"a\":1},\"y\":[\"\xff\"],\"id\"", "y")
	add("unknown member named subject", TypeRenderCreated, `"id"`, "\"subject\":\"\xff\",\"id\"", "$")
	add("unknown member named by a key hash", TypeRenderCreated, `"id"`, `"`+testHash+"\":\"\xff\",\"id\"", "$")
	add("unknown member of data named by a key hash", TypeShareViewed, `"shareId"`, `"`+testHash+"\":\"\xff\",\"shareId\"", "data")
	add("member name", TypeRenderCreated, `"id"`, "\"\xff\":1,\"id\"", "$")
	add("member name lone surrogate escape", TypeRenderCreated, `"id"`, `"\ud800":1,"id"`, "$")
	add("member name of data", TypeShareViewed, `"shareId"`, "\"\xff\":1,\"shareId\"", "data")
	add("outside any string", TypeRenderCreated, `"id"`, "\xff\"id\"", "$")
	add("after the object", TypeRenderCreated, `"data":{}}`, "\"data\":{}}\xff", "$")
	s, d := wire(TypeRenderCreated)
	tests = append(tests, row{"subject", s + "\xff", d, "subject"})
	tests = append(tests, row{"subject render id", strings.Replace(s, renderID[:2], "\xff\xfe", 1), d, "subject"})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.subject, []byte(tt.data))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error = %v, want a *DecodeError", err)
			}
			if got, want := de.Field, tt.field; got != want {
				t.Fatalf("Field = %q, want %q (%v)", got, want, err)
			}
			if !strings.Contains(de.Reason, "invalid UTF-8") {
				t.Fatalf("Reason = %q, want it to say invalid UTF-8", de.Reason)
			}
			for _, echo := range []string{"\xff", `\xff`, "\ufffd", "ÿ", `\ud800`, `\udc00`, `\udfff`, `\ud83d`, testHash} {
				if strings.Contains(err.Error(), echo) {
					t.Fatalf("error %q shows %q", err, echo)
				}
			}
		})
	}
}

// TestDecodeIDsDifferingInInvalidBytes sends two events whose ids differ
// only in invalid bytes. encoding/json repairs both ids into "evt-\ufffd",
// so the old Decode accepted them as one event and the projector dropped
// the second as a duplicate: both must be refused.
func TestDecodeIDsDifferingInInvalidBytes(t *testing.T) {
	for _, id := range []string{"evt-\xff", "evt-\xfe", `evt-\ud800`, `evt-\udbff`} {
		s, d := swap(t, TypeShareViewed, `"evt-1"`, `"`+id+`"`)
		ev, err := Decode(s, []byte(d))
		var de *DecodeError
		if !errors.As(err, &de) || de.Field != "id" {
			t.Errorf("Decode(id %q) = %q, %v; want a *DecodeError at id", id, ev.ID, err)
		}
	}
}

// TestDecodeAcceptsValidText checks that the text rule refuses nothing
// valid: escaped surrogate pairs, raw 4-byte characters, U+FFFD and
// noncharacters sent as such, and a NUL escape.
func TestDecodeAcceptsValidText(t *testing.T) {
	for _, tt := range []struct{ sent, want string }{
		{`Take \ud83d\ude00 look`, "Take 😀 look"},
		{`Take \uD83D\uDE00 look`, "Take 😀 look"},
		{"Take 😀 look", "Take 😀 look"},
		{"\ufffd \ufffe \uffff", "\ufffd \ufffe \uffff"},
		{`\ufffd\u0000`, "\ufffd\x00"},
		{`\\ud800`, `\ud800`},
	} {
		s, d := swap(t, TypeShareCreated, `"Take a look"`, `"`+tt.sent+`"`)
		ev, err := Decode(s, []byte(d))
		if err != nil {
			t.Errorf("Decode(message %q): %v", tt.sent, err)
			continue
		}
		if got := *ev.Data.(*ShareCreated).Message; got != tt.want {
			t.Errorf("Decode(message %q): message = %q, want %q", tt.sent, got, tt.want)
		}
	}
}
