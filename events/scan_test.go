package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDecodeJSONAsEncodingJSON checks that Decode's one-pass scan accepts
// exactly the JSON encoding/json accepts, and refuses the rest with
// encoding/json's reason: each value is put in an unknown member of a valid
// message, and alone as the whole message.
func TestDecodeJSONAsEncodingJSON(t *testing.T) {
	values := []string{
		`0`, `-0`, `01`, `-`, `-01`, `1.`, `.5`, `1.5`, `1e`, `1e+`, `1E-2`, `-0.0e-0`, `1e5.5`, `+1`, `0x10`,
		`true`, `tru`, `truex`, `false`, `null`, `nul`, `NULL`, `True`,
		`""`, `"\x"`, `"\u12g4"`, `"\u12"`, `"\/\b\f\n\r\t\"\\"`, "\"a\x01b\"", "\"a\x7fb\"", `"\'"`, `"`, `"\`,
		`{}`, `{ }`, `{"a":1,}`, `{,}`, `{"a" 1}`, `{"a":}`, `{1:1}`, `{"a":1 "b":2}`, `{"a":1`, `{"a":{}}`,
		`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1`, `[[]]`, `]`, `}`, `:`, `,`,
		"\ufeff{}", "\v1", "\f1", "\u00a01",
		strings.Repeat("[", 9998) + strings.Repeat("]", 9998),
		strings.Repeat("[", 9999) + strings.Repeat("]", 9999),
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat(`{"a":`, 9999) + "1" + strings.Repeat("}", 9999),
		strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	}
	subject, msg := wire(TypeRenderCreated)
	var tests []string
	for _, v := range values {
		tests = append(tests, `{"x":`+v+`,`+msg[1:], v, " "+v+"\n")
	}
	tests = append(tests, "", " ", msg+" ", msg+"\t\r\n", msg+"x", msg+"{}", msg+"\x00", `{"x":1}`+" \x00")
	for _, data := range tests {
		name := data
		if len(name) > 40 {
			name = fmt.Sprintf("%s...(%d bytes)", name[:40], len(name))
		}
		t.Run(name, func(t *testing.T) {
			_, err := Decode(subject, []byte(data))
			var de *DecodeError
			invalid := errors.As(err, &de) && de.Field == "$" && strings.HasPrefix(de.Reason, "not valid JSON")
			if valid := json.Valid([]byte(data)); invalid == valid {
				t.Fatalf("json.Valid = %t, Decode error = %v", valid, err)
			}
			if !invalid {
				return
			}
			var syntax *json.SyntaxError
			if !errors.As(json.Unmarshal([]byte(data), new(any)), &syntax) {
				t.Fatal("encoding/json gives no syntax error")
			}
			if got, want := de.Reason, fmt.Sprintf("not valid JSON: %v (at byte %d)", syntax, syntax.Offset); got != want {
				t.Fatalf("Reason = %q, want %q", got, want)
			}
		})
	}
}

// TestDecodeMembersAsEncodingJSON checks that Decode reads members as
// encoding/json reads them into a map: names are unquoted, the last member
// of a name wins, a name differing in case is another member.
func TestDecodeMembersAsEncodingJSON(t *testing.T) {
	tests := []struct {
		name, old, new string
		field          string // "" when the message is accepted
	}{
		{"escaped name", `"id":"evt-1"`, `"\u0069d":"evt-1"`, ""},
		{"escaped data name", `"data":{}`, `"d\u0061ta":{}`, ""},
		{"last id wins", `"id":"evt-1"`, `"id":7,"id":"evt-1"`, ""},
		{"last id is refused", `"id":"evt-1"`, `"id":"evt-1","id":7`, "id"},
		{"last data wins", `"data":{}`, `"data":[],"data":{}`, ""},
		{"last data is refused", `"data":{}`, `"data":{},"data":[]`, "data"},
		{"name in another case", `"id":"evt-1"`, `"ID":"evt-1"`, "id"},
		{"name with a space", `"id":"evt-1"`, `"id ":"evt-1"`, "id"},
		{"data in another case", `"data":{}`, `"Data":{}`, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, d := swap(t, TypeRenderCreated, tt.old, tt.new)
			ev, err := Decode(s, []byte(d))
			var de *DecodeError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Decode: %v", err)
			case tt.field == "" && ev.ID != "evt-1":
				t.Fatalf("ID = %q, want evt-1", ev.ID)
			case tt.field != "" && !errors.As(err, &de):
				t.Fatalf("Decode error = %v, want a *DecodeError", err)
			case tt.field != "" && de.Field != tt.field:
				t.Fatalf("Field = %q, want %q (%v)", de.Field, tt.field, err)
			}
		})
	}
}
