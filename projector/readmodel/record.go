package readmodel

import (
	"encoding/binary"
	"errors"

	"github.com/craftkit/sharesd/events"
)

// A share record is stored compactly, not as JSON: field names would cost
// more memory than the values. Layout (version 1):
//
//	byte    version (1)
//	byte    channel (0 link, 1 email)
//	varint  createdAt (ms since the epoch)
//	opt     expiresAt: byte 0 (null) or 1 followed by a varint
//	opt     recipientEmail: byte 0 (null) or 1 followed by a string
//	opt     message: byte 0 or 1 followed by a string
//	string  shareToken
//
// where a string is a uvarint length followed by its bytes. A revocation is
// a varint revokedAt (ms) followed by an opt reason.
const recordVersion = 1

var errCorrupt = errors.New("readmodel: corrupt share record")

func encodeShare(s *events.ShareCreated) []byte {
	b := make([]byte, 0, 64+len(s.ShareToken))
	b = append(b, recordVersion, channelByte(s.Channel))
	b = binary.AppendVarint(b, events.Millis(s.CreatedAt))
	if s.ExpiresAt == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendVarint(b, events.Millis(*s.ExpiresAt))
	}
	b = appendOptString(b, s.RecipientEmail)
	b = appendOptString(b, s.Message)
	return appendString(b, s.ShareToken)
}

func encodeRevocation(r *events.ShareRevoked) []byte {
	b := binary.AppendVarint(make([]byte, 0, 16), events.Millis(r.RevokedAt))
	return appendOptString(b, r.Reason)
}

func channelByte(c string) byte {
	if c == "email" {
		return 1
	}
	return 0
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, 0)
	}
	return appendString(append(b, 1), *s)
}

// decoder reads the fields of a record in order, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errCorrupt
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || uint64(len(d.b)-k) < n {
		d.err = errCorrupt
		return nil
	}
	s := d.b[k : k+int(n)]
	d.b = d.b[k+int(n):]
	return s
}

// optString reads an opt string.
func (d *decoder) optString() NullString {
	if d.byte() == 0 {
		return NullString{}
	}
	return NullString{B: d.string(), Valid: d.err == nil}
}

// decodeShare reads a share of a list from its id, encoded record, encoded
// revocation (nil when none) and click count. Its byte slices point into
// id, rec and rev.
func decodeShare(id, rec, rev []byte, clicks int64) (Share, error) {
	d := decoder{b: rec}
	if d.byte() != recordVersion {
		return Share{}, errCorrupt
	}
	s := Share{ID: id, Channel: "link", ClickCount: clicks}
	if d.byte() == 1 {
		s.Channel = "email"
	}
	s.CreatedAt = d.varint()
	if d.byte() == 1 {
		s.ExpiresAt = NullMillis{Ms: d.varint(), Valid: true}
	}
	s.RecipientEmail = d.optString()
	s.Message = d.optString()
	s.ShareToken = d.string()
	if d.err != nil {
		return Share{}, d.err
	}
	if rev != nil {
		r := decoder{b: rev}
		s.RevokedAt = NullMillis{Ms: r.varint(), Valid: true}
		s.RevokedReason = r.optString()
		if r.err != nil {
			return Share{}, r.err
		}
	}
	return s, nil
}
