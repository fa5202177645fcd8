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

// BenchmarkShares measures reading a list's shares without Redis: the Go
// cost of a response body before the API renders it. It allocates nothing.
func BenchmarkShares(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("shares=%d", n), func(b *testing.B) {
			l := &List{packed: benchPacked(n)}
			if got := l.Len(); got != n {
				b.Fatalf("Len() = %d, want %d", got, n)
			}
			b.SetBytes(int64(len(l.packed)))
			b.ReportAllocs()
			for b.Loop() {
				for _, err := range l.Shares() {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
