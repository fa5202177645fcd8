package readmodel

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
)

// apiTime is how the API writes t, computed independently of events:
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
			ShareToken: "tok\"/\\ é"}},
		{name: "long strings", share: events.ShareCreated{ShareID: strings.Repeat("i", 128), Channel: "link",
			Message: strp(strings.Repeat("é", 2000)), CreatedAt: created, ShareToken: strings.Repeat("t", 512)}, clicks: 1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rev []byte
			if tt.rev != nil {
				rev = encodeRevocation(tt.rev)
			}
			v, err := decodeShare([]byte(tt.share.ShareID), encodeShare(&tt.share), rev, tt.clicks)
			if err != nil {
				t.Fatal(err)
			}
			s := tt.share
			want := share{ID: s.ShareID, Channel: s.Channel, RecipientEmail: s.RecipientEmail, Message: s.Message,
				CreatedAt: apiTime(s.CreatedAt), ShareToken: s.ShareToken, ClickCount: tt.clicks}
			if s.ExpiresAt != nil {
				want.ExpiresAt = strp(apiTime(*s.ExpiresAt))
			}
			if tt.rev != nil {
				want.RevokedAt, want.RevokedReason = strp(apiTime(tt.rev.RevokedAt)), tt.rev.Reason
			}
			if got := shareOf(v); !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestSharesAllocateNothing checks that iterating over a list's shares
// allocates nothing: the views point into the reply.
func TestSharesAllocateNothing(t *testing.T) {
	l := &List{packed: benchPacked(100)}
	allocs := testing.AllocsPerRun(100, func() {
		n := 0
		for s, err := range l.Shares() {
			if err != nil {
				t.Fatal(err)
			}
			n += len(s.ID)
		}
		if n == 0 {
			t.Fatal("no shares")
		}
	})
	if allocs != 0 {
		t.Errorf("List.Shares allocates %.0f times per list, want 0", allocs)
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
			if _, err := decodeShare([]byte("s1"), tt.rec, tt.rev, 0); err != errCorrupt {
				t.Errorf("err = %v, want errCorrupt", err)
			}
		})
	}
}

// TestCorruptList checks that a packed list that does not parse ends
// List.Shares with an error after the shares before it.
func TestCorruptList(t *testing.T) {
	t.Parallel()
	good := benchPacked(1)
	tests := []struct {
		name   string
		packed []byte
	}{
		{"a truncated netstring", good[:len(good)-3]},
		{"a length that is no number", append([]byte("x:"), good...)},
		{"a click count that is no number", []byte("2:s1" + strconv.Itoa(len(good)) + ":" + string(good) + "1:x-")},
		{"a truncated revocation", good[:len(good)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &List{packed: append(slices.Clone(good), tt.packed...)}
			n := 0
			for _, err := range l.Shares() {
				if err != nil {
					if err != errCorrupt || n != 1 {
						t.Errorf("err %v after %d shares, want errCorrupt after 1", err, n)
					}
					return
				}
				n++
			}
			t.Errorf("%d shares and no error, want errCorrupt after 1", n)
		})
	}
}

// TestRecordVersions: a record counts its own views (version 2) plus those
// counted apart; a version 1 record, the earlier layout's, only those; both
// give their creation time, the list's sort key.
func TestRecordVersions(t *testing.T) {
	t.Parallel()
	s := events.ShareCreated{ShareID: "s1", Channel: "email", Message: strp("hi"), CreatedAt: epoch, ShareToken: "cks_1"}
	v2 := encodeShare(&s)
	withViews := slices.Clone(v2)
	copy(withViews[1:1+viewsLen], []byte{0, 0, 0, 1, 0, 5}) // 65,541 views
	v1 := append([]byte{recordV1}, v2[1+viewsLen:]...)
	tests := []struct {
		name  string
		rec   []byte
		apart int64
		want  int64
	}{
		{"a new record", v2, 0, 0},
		{"a record with its views", withViews, 0, 65541},
		{"a record with views counted apart too", withViews, -3, 65538},
		{"a version 1 record", v1, 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeShare([]byte("s1"), tt.rec, nil, tt.apart)
			if err != nil {
				t.Fatal(err)
			}
			if got.ClickCount != tt.want || got.Channel != "email" || string(got.Message.B) != "hi" || string(got.ShareToken) != "cks_1" {
				t.Errorf("decoded %+v, want clickCount %d and the share's fields", got, tt.want)
			}
			if at, ok := createdAt(tt.rec); !ok || at != events.Millis(epoch) {
				t.Errorf("createdAt = %d, %v; want %d", at, ok, events.Millis(epoch))
			}
		})
	}
	if _, err := decodeShare([]byte("s1"), v2[:1+viewsLen-1], nil, 0); err != errCorrupt {
		t.Errorf("a record cut inside its views: err %v, want errCorrupt", err)
	}
	if _, ok := createdAt(v2[:1+viewsLen]); ok {
		t.Error("createdAt of a record cut before it: ok, want not")
	}
}
