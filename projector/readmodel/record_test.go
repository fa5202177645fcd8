package readmodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/craftkit/sharesd/events"
)

// apiTime is how the API writes t, computed independently of record.go:
// UTC, truncated to the millisecond.
func apiTime(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
}

func TestShareRecordRoundTrip(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tp := func(s string) *time.Time { v := at(s); return &v }
	created := at("2026-06-05T12:05:00.123456789+02:00")
	tests := []struct {
		name   string
		share  events.ShareCreated
		rev    *events.ShareRevoked
		clicks int64
		base   string
	}{
		{name: "all nulls", share: events.ShareCreated{ShareID: "s1", Channel: "link", CreatedAt: created, ShareToken: "cks_1"}},
		{name: "every field", share: events.ShareCreated{ShareID: "s2", Channel: "email", RecipientEmail: strp("ada@example.com"),
			Message: strp("Here is your signed agreement."), ExpiresAt: tp("2026-12-31T23:59:59Z"), CreatedAt: created, ShareToken: "cks_2"}, clicks: 42},
		{name: "empty strings are not null", share: events.ShareCreated{ShareID: "s3", Channel: "email", RecipientEmail: strp(""),
			Message: strp(""), CreatedAt: created, ShareToken: "t"}},
		{name: "revoked with a reason", share: events.ShareCreated{ShareID: "s4", Channel: "link", CreatedAt: created, ShareToken: "cks_4"},
			rev: &events.ShareRevoked{ShareID: "s4", RevokedAt: at("2026-06-05T11:00:00.999999Z"), Reason: strp("revoked_by_partner")}, clicks: 3},
		{name: "revoked without a reason", share: events.ShareCreated{ShareID: "s5", Channel: "link", CreatedAt: created, ShareToken: "cks_5"},
			rev: &events.ShareRevoked{ShareID: "s5", RevokedAt: at("2026-06-05T11:00:00-05:30")}},
		{name: "revoked with an empty reason", share: events.ShareCreated{ShareID: "s6", Channel: "link", CreatedAt: created, ShareToken: "cks_6"},
			rev: &events.ShareRevoked{ShareID: "s6", RevokedAt: at("2026-06-05T11:00:00Z"), Reason: strp("")}},
		{name: "times before the epoch", share: events.ShareCreated{ShareID: "s7", Channel: "link", CreatedAt: at("1969-12-31T23:59:59.9999Z"),
			ExpiresAt: tp("1900-01-01T00:00:00.0005+01:00"), ShareToken: "cks_7"},
			rev: &events.ShareRevoked{ShareID: "s7", RevokedAt: at("1970-01-01T00:00:00.0001Z")}},
		{name: "the largest time", share: events.ShareCreated{ShareID: "s8", Channel: "link", CreatedAt: at("9999-12-31T23:59:59.999999999Z"),
			ShareToken: "cks_8"}},
		{name: "strings to escape", share: events.ShareCreated{ShareID: "id \"quoted\" \\ \u2028", Channel: "email",
			RecipientEmail: strp("a\x00b\x1fc\u2029"), Message: strp("line\nline\ttab 🎉 日本"), CreatedAt: created,
			ShareToken: "tok\"/\\ é"}, base: "https://x.example/a\"b"},
		{name: "long strings", share: events.ShareCreated{ShareID: strings.Repeat("i", 128), Channel: "link",
			Message: strp(strings.Repeat("é", 2000)), CreatedAt: created, ShareToken: strings.Repeat("t", 512)}, clicks: 1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.base
			if base == "" {
				base = testBase
			}
			var rev []byte
			if tt.rev != nil {
				rev = encodeRevocation(tt.rev)
			}
			prefix := []byte("prefix,")
			out, err := appendShareJSON(slices.Clone(prefix), tt.share.ShareID, encodeShare(&tt.share), rev, tt.clicks, base)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("output lost the prefix: %q", out)
			}
			var got share
			dec := json.NewDecoder(bytes.NewReader(out[len(prefix):]))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decode %q: %v", out, err)
			}
			if dec.More() {
				t.Fatalf("data after the object: %q", out)
			}
			s := tt.share
			want := share{ID: s.ShareID, Channel: s.Channel, RecipientEmail: s.RecipientEmail, Message: s.Message,
				CreatedAt: apiTime(s.CreatedAt), ShareToken: s.ShareToken, ClickCount: tt.clicks,
				ShareURL: base + "/share/" + s.ShareToken}
			if s.ExpiresAt != nil {
				want.ExpiresAt = strp(apiTime(*s.ExpiresAt))
			}
			if tt.rev != nil {
				want.RevokedAt, want.RevokedReason = strp(apiTime(tt.rev.RevokedAt)), tt.rev.Reason
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestAppendShareJSONAllocatesNothing(t *testing.T) {
	s := events.ShareCreated{ShareID: "s1", Channel: "email", RecipientEmail: strp("ada@example.com"),
		Message: strp("a \"quoted\"\nmessage é 🎉"), CreatedAt: epoch, ShareToken: "cks_1"}
	rec := encodeShare(&s)
	rev := encodeRevocation(&events.ShareRevoked{ShareID: "s1", RevokedAt: epoch, Reason: strp("revoked_by_partner")})
	dst := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := appendShareJSON(dst[:0], s.ShareID, rec, rev, 7, testBase); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("appendShareJSON allocates %.0f times into a large enough buffer, want 0", allocs)
	}
}

func TestCorruptShareRecord(t *testing.T) {
	t.Parallel()
	s := events.ShareCreated{ShareID: "s1", Channel: "link", Message: strp("hello"), CreatedAt: epoch, ShareToken: "cks_1"}
	rec := encodeShare(&s)
	rev := encodeRevocation(&events.ShareRevoked{ShareID: "s1", RevokedAt: epoch, Reason: strp("r")})
	tests := []struct {
		name     string
		rec, rev []byte
	}{
		{"an empty record", nil, nil},
		{"another record version", append([]byte{recordVersion + 1}, rec[1:]...), nil},
		{"a truncated record", rec[:len(rec)-2], nil},
		{"a string longer than the record", append(slices.Clone(rec[:len(rec)-6]), 0x7f), nil},
		{"a truncated revocation", rec, rev[:len(rev)-1]},
		{"an empty revocation", rec, []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := appendShareJSON(nil, "s1", tt.rec, tt.rev, 0, testBase); err != errCorrupt {
				t.Errorf("err = %v, want errCorrupt", err)
			}
		})
	}
}

// trickyStrings are strings whose JSON encoding is easy to get wrong.
var trickyStrings = []string{
	"",
	"plain",
	`"quoted"`,
	`back\slash`,
	"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x20\x7f",
	"\u2028\u2029 separators",
	"<script>&amp;</script>",
	"é 日本語 Ελληνικά",
	"🎉 👩‍👩‍👧‍👦 🇫🇷",
	"\ufffd replacement, \ufeff BOM, \uffff noncharacter",
	"invalid \xff byte",
	"truncated \xe6\x97",
	"truncated at the end \xf0\x9f\x8e",
	"surrogate half \xed\xa0\x80",
	"overlong \xc0\xaf slash",
	"\x80 leading continuation",
	"mixed \"\\\n\xff\u2028é🎉",
	strings.Repeat("\xff", 10),
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range trickyStrings {
		t.Run(fmt.Sprintf("%q", s), func(t *testing.T) {
			checkJSONString(t, s)
		})
	}
}

// checkJSONString checks that appendJSONString of s, as a string and as
// bytes, is valid JSON that decodes to what encoding/json's encoding of s
// decodes to, and holds no raw control character or line separator.
func checkJSONString(t *testing.T, s string) {
	std, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var want string
	if err := json.Unmarshal(std, &want); err != nil {
		t.Fatal(err)
	}
	for _, out := range [][]byte{appendJSONString(nil, s), appendJSONString(nil, []byte(s))} {
		if !json.Valid(out) {
			t.Fatalf("appendJSONString(%q) = %q, not valid JSON", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		if got != want {
			t.Errorf("appendJSONString(%q) decodes to %q, encoding/json's to %q", s, got, want)
		}
		if !utf8.Valid(out) {
			t.Errorf("appendJSONString(%q) = %q, not valid UTF-8", s, out)
		}
		for _, b := range out {
			if b < 0x20 {
				t.Errorf("appendJSONString(%q) = %q holds raw control byte %#x", s, out, b)
			}
		}
		if bytes.ContainsRune(out, '\u2028') || bytes.ContainsRune(out, '\u2029') {
			t.Errorf("appendJSONString(%q) = %q holds a raw U+2028 or U+2029", s, out)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}
