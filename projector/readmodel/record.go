package readmodel

import (
	"encoding/binary"
	"errors"

	"github.com/craftkit/sharesd/events"
)

// A share record is stored compactly, not as JSON: field names would cost
// more memory than the values. Layout (version 2):
//
//	byte    version (2)
//	6 bytes views (big-endian): the share's share.viewed count
//	byte    channel (0 link, 1 email)
//	varint  createdAt (ms since the epoch)
//	opt     expiresAt: byte 0 (null) or 1 followed by a varint
//	opt     recipientEmail: byte 0 (null) or 1 followed by a string
//	opt     message: byte 0 or 1 followed by a string
//	string  shareToken
//
// where a string is a uvarint length followed by its bytes. Version 1, the
// earlier layout's, is the same without the views (they were counted apart,
// in the render's clicks hash); both are read. A revocation is a varint
// revokedAt (ms) followed by an opt reason.
const (
	recordVersion = 2
	recordV1      = 1
	viewsLen      = 6
)

var errCorrupt = errors.New("readmodel: corrupt share record")

// encodeShare is a share's record with no views yet.
func encodeShare(s *events.ShareCreated) []byte {
	b := make([]byte, 0, 64+len(s.ShareToken))
	b = append(b, recordVersion, 0, 0, 0, 0, 0, 0, channelByte(s.Channel))
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
// revocation (nil when none) and the views counted apart from the record
// (the clicks hash). Its byte slices point into id, rec and rev.
func decodeShare(id, rec, rev []byte, clicks int64) (Share, error) {
	d := decoder{b: rec}
	switch d.byte() {
	case recordVersion:
		if len(d.b) < viewsLen {
			return Share{}, errCorrupt
		}
		clicks += int64(uint64(d.b[0])<<40 | uint64(d.b[1])<<32 | uint64(binary.BigEndian.Uint32(d.b[2:6])))
		d.b = d.b[viewsLen:]
	case recordV1:
	default:
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

// createdAt reads the creation time of an encoded record of either version,
// the list's sort key.
func createdAt(rec []byte) (int64, bool) {
	switch {
	case len(rec) > 1+viewsLen+1 && rec[0] == recordVersion:
		rec = rec[1+viewsLen+1:]
	case len(rec) > 2 && rec[0] == recordV1:
		rec = rec[2:]
	default:
		return 0, false
	}
	v, n := binary.Varint(rec)
	return v, n > 0
}
