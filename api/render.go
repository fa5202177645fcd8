package api

import (
	"strconv"
	"unicode/utf8"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// This file writes the body of GET /v1/renders/{id}/shares, as
// openapi.yaml describes it, straight into a byte slice: no reflection and,
// once the buffer is large enough, no allocation per share.

// appendShares appends the list as the response's array of shares, with
// share URLs under the project's share base, or defaultBase when it has
// none.
func appendShares(dst []byte, list *readmodel.List, defaultBase string) ([]byte, error) {
	base := list.ShareBase
	if base == "" {
		base = defaultBase
	}
	dst = append(dst, '[')
	first := true
	for s, err := range list.Shares() {
		if err != nil {
			return dst, err
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendShare(dst, &s, base)
	}
	return append(dst, ']'), nil
}

// appendShare appends one share in the contract's field order.
func appendShare(dst []byte, s *readmodel.Share, shareBase string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, s.ID)
	dst = append(dst, `,"channel":`...)
	dst = appendJSONString(dst, s.Channel)
	dst = append(dst, `,"recipientEmail":`...)
	dst = appendNullString(dst, s.RecipientEmail)
	dst = append(dst, `,"message":`...)
	dst = appendNullString(dst, s.Message)
	dst = append(dst, `,"revokedAt":`...)
	dst = appendNullTime(dst, s.RevokedAt)
	dst = append(dst, `,"revokedReason":`...)
	dst = appendNullString(dst, s.RevokedReason)
	dst = append(dst, `,"expiresAt":`...)
	dst = appendNullTime(dst, s.ExpiresAt)
	dst = append(dst, `,"createdAt":`...)
	dst = appendTime(dst, s.CreatedAt)
	dst = append(dst, `,"shareToken":`...)
	dst = appendJSONString(dst, s.ShareToken)
	dst = append(dst, `,"clickCount":`...)
	dst = strconv.AppendInt(dst, s.ClickCount, 10)
	dst = append(dst, `,"shareUrl":"`...)
	dst = appendEscaped(dst, shareBase)
	dst = append(dst, "/share/"...)
	dst = appendEscaped(dst, s.ShareToken)
	return append(dst, '"', '}')
}

func appendNullString(dst []byte, s readmodel.NullString) []byte {
	if !s.Valid {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, s.B)
}

func appendNullTime(dst []byte, t readmodel.NullMillis) []byte {
	if !t.Valid {
		return append(dst, "null"...)
	}
	return appendTime(dst, t.Ms)
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
