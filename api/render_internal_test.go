package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/model"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// TestAppendShare checks each field of a rendered share against the
// contract: nulls, empty strings, times on both sides of the epoch and up
// to year 9999, strings to escape, long strings. Times are expected as
// events.FormatMillis writes them (time.Time.Format), not as appendMillis.
func TestAppendShare(t *testing.T) {
	t.Parallel()
	ms := func(s string) int64 {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return events.Millis(v)
	}
	some := func(s string) readmodel.NullString { return readmodel.NullString{B: []byte(s), Valid: true} }
	someAt := func(s string) readmodel.NullMillis { return readmodel.NullMillis{Ms: ms(s), Valid: true} }
	strp := func(s string) *string { return &s }
	apiTime := func(s string) string { return events.FormatMillis(ms(s)) }
	timep := func(s string) *string { return strp(apiTime(s)) }
	created := "2026-06-05T12:05:00.123456789+02:00"
	view := func(id, channel, token string) readmodel.Share {
		return readmodel.Share{ID: []byte(id), Channel: channel, CreatedAt: ms(created), ShareToken: []byte(token)}
	}
	tests := []struct {
		name string
		base string
		view readmodel.Share
		want model.Share
	}{
		{name: "all nulls", view: view("s1", "link", "cks_1"),
			want: model.Share{ID: "s1", Channel: "link", CreatedAt: apiTime(created), ShareToken: "cks_1"}},
		{name: "every field", view: func() readmodel.Share {
			v := view("s2", "email", "cks_2")
			v.RecipientEmail, v.Message, v.ExpiresAt, v.ClickCount = some("ada@example.com"), some("Signed."), someAt("2026-12-31T23:59:59Z"), 42
			v.RevokedAt, v.RevokedReason = someAt("2026-06-05T11:00:00.999999Z"), some("revoked_by_partner")
			return v
		}(), want: model.Share{ID: "s2", Channel: "email", RecipientEmail: strp("ada@example.com"), Message: strp("Signed."),
			RevokedAt: timep("2026-06-05T11:00:00.999999Z"), RevokedReason: strp("revoked_by_partner"),
			ExpiresAt: timep("2026-12-31T23:59:59Z"), CreatedAt: apiTime(created), ShareToken: "cks_2", ClickCount: 42}},
		{name: "empty strings are not null", view: func() readmodel.Share {
			v := view("s3", "email", "t")
			v.RecipientEmail, v.Message = some(""), some("")
			v.RevokedAt, v.RevokedReason = someAt("2026-06-05T11:00:00-05:30"), some("")
			return v
		}(), want: model.Share{ID: "s3", Channel: "email", RecipientEmail: strp(""), Message: strp(""),
			RevokedAt: timep("2026-06-05T11:00:00-05:30"), RevokedReason: strp(""), CreatedAt: apiTime(created), ShareToken: "t"}},
		{name: "times before the epoch", view: func() readmodel.Share {
			v := view("s7", "link", "cks_7")
			v.CreatedAt, v.ExpiresAt, v.RevokedAt = ms("1969-12-31T23:59:59.9999Z"), someAt("1900-01-01T00:00:00.0005+01:00"), someAt("1970-01-01T00:00:00.0001Z")
			return v
		}(), want: model.Share{ID: "s7", Channel: "link", RevokedAt: timep("1970-01-01T00:00:00.0001Z"),
			ExpiresAt: timep("1900-01-01T00:00:00.0005+01:00"), CreatedAt: apiTime("1969-12-31T23:59:59.9999Z"), ShareToken: "cks_7"}},
		{name: "the largest time", view: func() readmodel.Share {
			v := view("s8", "link", "cks_8")
			v.CreatedAt = ms("9999-12-31T23:59:59.999999999Z")
			return v
		}(), want: model.Share{ID: "s8", Channel: "link", CreatedAt: "9999-12-31T23:59:59.999Z", ShareToken: "cks_8"}},
		{name: "strings to escape", base: "https://x.example/a\"b", view: func() readmodel.Share {
			v := view("id \"quoted\" \\ \u2028", "email", "tok\"/\\ é")
			v.RecipientEmail, v.Message = some("a\x00b\x1fc\u2029"), some("line\nline\ttab 🎉 日本")
			return v
		}(), want: model.Share{ID: "id \"quoted\" \\ \u2028", Channel: "email", RecipientEmail: strp("a\x00b\x1fc\u2029"),
			Message: strp("line\nline\ttab 🎉 日本"), CreatedAt: apiTime(created), ShareToken: "tok\"/\\ é"}},
		{name: "long strings", view: func() readmodel.Share {
			v := view(strings.Repeat("i", 128), "link", strings.Repeat("t", 512))
			v.Message, v.ClickCount = some(strings.Repeat("é", 2000)), 1<<40
			return v
		}(), want: model.Share{ID: strings.Repeat("i", 128), Channel: "link", Message: strp(strings.Repeat("é", 2000)),
			CreatedAt: apiTime(created), ShareToken: strings.Repeat("t", 512), ClickCount: 1 << 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.base
			if base == "" {
				base = "https://www.craftkit.dev"
			}
			prefix := []byte("prefix,")
			out := appendShare(slices.Clone(prefix), &tt.view, base)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("output lost the prefix: %q", out)
			}
			var got model.Share
			dec := json.NewDecoder(bytes.NewReader(out[len(prefix):]))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decode %q: %v", out, err)
			}
			if dec.More() {
				t.Fatalf("data after the object: %q", out)
			}
			want := tt.want
			want.ShareURL = base + "/share/" + want.ShareToken
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestAppendShareAllocatesNothing(t *testing.T) {
	v := readmodel.Share{ID: []byte("s1"), Channel: "email", CreatedAt: 1780000000000, ShareToken: []byte("cks_1"), ClickCount: 7,
		RecipientEmail: readmodel.NullString{B: []byte("ada@example.com"), Valid: true},
		Message:        readmodel.NullString{B: []byte("a \"quoted\"\nmessage é 🎉"), Valid: true},
		RevokedAt:      readmodel.NullMillis{Ms: 1780000000000, Valid: true},
		RevokedReason:  readmodel.NullString{B: []byte("revoked_by_partner"), Valid: true}}
	dst := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() { dst = appendShare(dst[:0], &v, "https://www.craftkit.dev") })
	if allocs != 0 {
		t.Errorf("appendShare allocates %.0f times into a large enough buffer, want 0", allocs)
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

// TestAppendMillis checks the fast time formatting against
// events.AppendMillis (time.Time.AppendFormat) over its whole range and
// beyond it.
func TestAppendMillis(t *testing.T) {
	t.Parallel()
	check := func(ms int64) {
		if got, want := string(appendMillis(nil, ms)), string(events.AppendMillis(nil, ms)); got != want {
			t.Fatalf("appendMillis(%d) = %s, want %s", ms, got, want)
		}
	}
	for _, ms := range []int64{0, 1, 999, 1000, 86399999, 86400000, 951782400000, 951868800000, 4107542400000,
		maxFastMillis, maxFastMillis + 1, -1, -86400001, 1<<62 - 1, -1 << 62} {
		check(ms)
	}
	// Every day from 1970 to 2109, then every 5th day to 9999 (5 and the
	// 1461 days of four years are coprime, so one leap day in five is met
	// in every century), at a varying time of day.
	for d := int64(0); d <= maxFastMillis/86400000; d++ {
		if d > 51000 && d%5 != 0 {
			continue
		}
		check(d*86400000 + (d*7919337)%86400000)
	}
}

// BenchmarkAppendShares measures rendering a list read from a real Redis,
// Redis itself left out: the Go cost of a response body (List.Shares and
// appendShare). Every other share has an email and an expiry, every tenth
// is revoked. It allocates nothing once the buffer is large enough.
func BenchmarkAppendShares(b *testing.B) {
	rs := redistest.Start(b)
	store := readmodel.New(rs.Client(b), readmodel.DefaultHorizon)
	ctx := context.Background()
	gen := readmodel.NewGen(time.Now())
	if ok, err := store.Activate(ctx, gen, ""); err != nil || !ok {
		b.Fatalf("activate: %v %v", ok, err)
	}
	project := "0b6c7c0e-8a1f-4c7e-9d2a-3e4f5a6b7c8d"
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	msg, email, reason := "Here is your signed agreement.", "ada@example.com", "revoked_by_partner"
	for _, n := range []int{1, 10, 100, 1000} {
		render := eventstest.UUID(n)
		var ops []readmodel.Op
		op := func(data any) {
			ev := events.Event{ID: fmt.Sprintf("ev-%d-%d", n, len(ops)), ProjectID: project, RenderID: render, Data: data}
			switch data.(type) {
			case *events.ShareCreated:
				ev.Type = events.TypeShareCreated
			case *events.ShareRevoked:
				ev.Type = events.TypeShareRevoked
			}
			ops = append(ops, readmodel.Op{Seq: uint64(n*10000 + len(ops) + 1), Time: at, Event: ev})
		}
		for i := range n {
			id := fmt.Sprintf("0b6c7c0e-8a1f-4c7e-9d2a-%012d", i)
			s := &events.ShareCreated{ShareID: id, Channel: "link", Message: &msg, CreatedAt: at.Add(time.Duration(i) * time.Second), ShareToken: "cks_" + id}
			if i%2 == 0 {
				s.Channel, s.RecipientEmail, s.ExpiresAt = "email", &email, &at
			}
			op(s)
			if i%10 == 0 {
				op(&events.ShareRevoked{ShareID: id, RevokedAt: at, Reason: &reason})
			}
		}
		if _, _, err := store.Apply(ctx, gen, ops, 0, false); err != nil {
			b.Fatal(err)
		}
		list, err := store.List(ctx, project, render, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("shares=%d", n), func(b *testing.B) {
			buf, err := appendShares(nil, list, "https://share.example")
			if err != nil || list.Len() != n {
				b.Fatalf("%d shares, err %v; want %d", list.Len(), err, n)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = appendShares(buf[:0], list, "https://share.example"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
