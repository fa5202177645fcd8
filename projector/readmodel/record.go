package readmodel

import (
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"

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

// optString returns the string and whether it is present (not null).
func (d *decoder) optString() ([]byte, bool) {
	if d.byte() == 0 {
		return nil, false
	}
	return d.string(), d.err == nil
}

// appendShareJSON appends one share of the API's list in the contract's
// field order. rec is an encoded record, rev an encoded revocation or nil.
// It allocates nothing beyond growing dst (the id may be a []byte, so a
// caller need not convert it to a string, which allocates past 32 bytes).
func appendShareJSON[S string | []byte](dst []byte, id S, rec, rev []byte, clicks int64, shareBase string) ([]byte, error) {
	d := decoder{b: rec}
	if d.byte() != recordVersion {
		return dst, errCorrupt
	}
	channel := "link"
	if d.byte() == 1 {
		channel = "email"
	}
	created := d.varint()
	var expires int64
	hasExpires := d.byte() == 1
	if hasExpires {
		expires = d.varint()
	}
	email, hasEmail := d.optString()
	msg, hasMsg := d.optString()
	token := d.string()
	if d.err != nil {
		return dst, d.err
	}

	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `,"channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","recipientEmail":`...)
	dst = appendOptJSON(dst, email, hasEmail)
	dst = append(dst, `,"message":`...)
	dst = appendOptJSON(dst, msg, hasMsg)
	if rev == nil {
		dst = append(dst, `,"revokedAt":null,"revokedReason":null`...)
	} else {
		r := decoder{b: rev}
		at := r.varint()
		reason, hasReason := r.optString()
		if r.err != nil {
			return dst, r.err
		}
		dst = append(dst, `,"revokedAt":`...)
		dst = appendTime(dst, at)
		dst = append(dst, `,"revokedReason":`...)
		dst = appendOptJSON(dst, reason, hasReason)
	}
	dst = append(dst, `,"expiresAt":`...)
	if hasExpires {
		dst = appendTime(dst, expires)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"createdAt":`...)
	dst = appendTime(dst, created)
	dst = append(dst, `,"shareToken":`...)
	dst = appendJSONString(dst, token)
	dst = append(dst, `,"clickCount":`...)
	dst = strconv.AppendInt(dst, clicks, 10)
	dst = append(dst, `,"shareUrl":`...)
	dst = append(dst, '"')
	dst = appendEscaped(dst, shareBase)
	dst = append(dst, "/share/"...)
	dst = appendEscaped(dst, token)
	return append(dst, '"', '}'), nil
}

func appendOptJSON(dst, s []byte, ok bool) []byte {
	if !ok {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, s)
}

func appendTime(dst []byte, ms int64) []byte {
	dst = append(dst, '"')
	dst = appendMillis(dst, ms)
	return append(dst, '"')
}

// maxFastMillis is 9999-12-31T23:59:59.999Z, the last time with a
// four-digit year.
const maxFastMillis = 253402300799999

// appendMillis is events.AppendMillis, several times faster for times
// between 1970 and 9999 (every time a list holds in practice): it computes
// the civil date directly instead of going through time.Time.AppendFormat.
func appendMillis(dst []byte, ms int64) []byte {
	if ms < 0 || ms > maxFastMillis {
		return events.AppendMillis(dst, ms)
	}
	days, rem := ms/86400000, ms%86400000
	year, month, day := civil(days)
	sec := rem / 1000
	var b [24]byte
	put4(b[0:4], int(year))
	b[4] = '-'
	put2(b[5:7], int(month))
	b[7] = '-'
	put2(b[8:10], int(day))
	b[10] = 'T'
	put2(b[11:13], int(sec/3600))
	b[13] = ':'
	put2(b[14:16], int(sec/60%60))
	b[16] = ':'
	put2(b[17:19], int(sec%60))
	b[19] = '.'
	milli := int(rem % 1000)
	b[20], b[21], b[22] = byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10)
	b[23] = 'Z'
	return append(dst, b[:]...)
}

// civil converts days since 1970-01-01 (not negative) to a proleptic
// Gregorian date (Howard Hinnant's civil_from_days).
func civil(days int64) (year, month, day int64) {
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

func put2(b []byte, v int) { b[0], b[1] = byte('0'+v/10), byte('0'+v%10) }

func put4(b []byte, v int) {
	b[0], b[1], b[2], b[3] = byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping what JSON requires
// (quote, backslash, control characters), invalid UTF-8 (as U+FFFD) and
// U+2028/U+2029, as encoding/json does.
func appendJSONString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

func decodeRune[S string | []byte](s S) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	return utf8.RuneError, 1
}

// appendEscaped appends the inside of a JSON string holding s.
func appendEscaped[S string | []byte](dst []byte, s S) []byte {
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
