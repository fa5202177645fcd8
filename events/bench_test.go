package events

import (
	"strings"
	"testing"
)

// BenchmarkDecode decodes the valid message of every type, one at a time,
// a rejected one and one of MaxSize bytes: the projector's hot path.
func BenchmarkDecode(b *testing.B) {
	type msg struct {
		name          string
		subject, data string
	}
	var msgs []msg
	for _, typ := range []Type{TypeShareViewed, TypeShareCreated, TypeAPIKeyCreated} {
		s, d := wire(typ)
		msgs = append(msgs, msg{string(typ), s, d})
	}
	s, d := wire(TypeShareViewed)
	msgs = append(msgs, msg{"rejected", s, strings.Replace(d, `"shr_1"`, `7`, 1)})
	s, d = wire(TypeRenderCreated)
	msgs = append(msgs, msg{"64KiB", s, pad(d, MaxSize)})
	for _, m := range msgs {
		b.Run(m.name, func(b *testing.B) {
			data := []byte(m.data)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Decode(m.subject, data)
			}
		})
	}
}
