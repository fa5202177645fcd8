package readmodel

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
)

// benchPacked builds what readRender returns for n shares, newest first:
// per share the netstrings of id, record and click count, then the
// revocation's netstring or "-". Every tenth share is revoked.
func benchPacked(n int) []byte {
	netstring := func(b, v []byte) []byte {
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		return append(b, v...)
	}
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	msg, email, reason := "Here is your signed agreement.", "ada@example.com", "revoked_by_partner"
	var packed []byte
	for i := n - 1; i >= 0; i-- {
		id := fmt.Sprintf("0b6c7c0e-8a1f-4c7e-9d2a-%012d", i)
		s := &events.ShareCreated{ShareID: id, Channel: "link", Message: &msg, CreatedAt: at.Add(time.Duration(i) * time.Second),
			ShareToken: "cks_" + id}
		if i%2 == 0 {
			s.Channel, s.RecipientEmail, s.ExpiresAt = "email", &email, &at
		}
		packed = netstring(packed, []byte(id))
		packed = netstring(packed, encodeShare(s))
		packed = netstring(packed, strconv.AppendInt(nil, int64(i*7), 10))
		if i%10 == 0 {
			packed = netstring(packed, encodeRevocation(&events.ShareRevoked{ShareID: id, RevokedAt: at, Reason: &reason}))
		} else {
			packed = append(packed, '-')
		}
	}
	return packed
}

// BenchmarkAppendJSON measures rendering a list as the API's JSON, without
// Redis: the Go cost of a response body. It should allocate nothing once
// the buffer is large enough.
func BenchmarkAppendJSON(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("shares=%d", n), func(b *testing.B) {
			l := &List{packed: benchPacked(n)}
			buf, err := l.AppendJSON(nil, "https://share.example")
			if err != nil {
				b.Fatal(err)
			}
			if got := l.Len(); got != n {
				b.Fatalf("Len() = %d, want %d", got, n)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = l.AppendJSON(buf[:0], "https://share.example"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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
