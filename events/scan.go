package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// The text of a message must be valid as sent. encoding/json replaces
// invalid UTF-8 and lone surrogate escapes ("\ud800") with U+FFFD, so two
// messages that differ only there would decode to the same event, and the
// second would be dropped as a duplicate of the first. Decode refuses them.

// A textProblem is the first string of a value that is not valid text:
// the offset of the bad byte or escape, and what is wrong. off is -1 when
// there is none.
type textProblem struct {
	off  int
	what string
}

var noProblem = textProblem{off: -1}

func (p textProblem) found() bool { return p.off >= 0 }

// checkText returns the first string of data, a JSON object that
// encoding/json accepted, that is not valid text, as a *DecodeError whose
// Field is the member it is in: "id", "data.shareId", an unknown member
// ("version", "data.extra") wherever in its value the string is, or the
// object ("$", "data") when the bad string is a member name or the name
// cannot be shown (see memberPath). Its Reason never shows the bytes.
func checkText(data []byte) *DecodeError {
	s := textScan{data: data}
	s.object(s.space(0), "")
	return s.bad
}

type textScan struct {
	data []byte
	bad  *DecodeError
}

// fail records problem p of the member at field, unless one was found
// before.
func (s *textScan) fail(field, prefix string, p textProblem) {
	if s.bad == nil {
		s.bad = &DecodeError{Field: field, Reason: fmt.Sprintf("%s%s (at byte %d)", prefix, p.what, p.off+1)}
	}
}

// object scans the object at data[i], whose path is path ("" for the
// envelope, "data"), and returns the offset after it. It descends into
// the envelope's data only; any other value is scanned as one.
func (s *textScan) object(i int, path string) int {
	i = s.space(i + 1)
	for i < len(s.data) && s.data[i] != '}' {
		if s.data[i] == ',' {
			i = s.space(i + 1)
		}
		end, p := s.str(i)
		if p.found() {
			s.fail(objectPath(path), "member name: ", p)
		}
		key := s.data[i:end]
		i = s.space(s.space(end) + 1) // skip the colon
		if path == "" && i < len(s.data) && s.data[i] == '{' && keyIs(key, "data") {
			i = s.space(s.object(i, "data"))
			continue
		}
		end, p = s.value(i)
		if p.found() {
			s.fail(memberPath(path, key), "", p)
		}
		i = s.space(end)
	}
	return i + 1
}

// value scans the value at data[i] and returns the offset after it and
// the first problem in its strings.
func (s *textScan) value(i int) (int, textProblem) {
	first, depth := noProblem, 0
	for i < len(s.data) {
		switch c := s.data[i]; {
		case c == '"':
			end, p := s.str(i)
			if !first.found() {
				first = p
			}
			if i = end; depth == 0 {
				return i, first
			}
			continue
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				return i + 1, first
			}
		case depth == 0 && (c == ',' || c == '}' || c == ']' || isSpace(c)):
			return i, first // the end of a number, true, false or null
		}
		i++
	}
	return i, first
}

// str scans the string at data[i] and returns the offset after it and its
// first problem.
func (s *textScan) str(i int) (int, textProblem) {
	d, p := s.data, noProblem
	for i++; i < len(d); {
		switch c := d[i]; {
		case c == '"':
			return i + 1, p
		case c == '\\' && i+1 < len(d) && d[i+1] == 'u':
			n := 6
			if r := hex4(d[i+2:]); utf16.IsSurrogate(r) {
				if r < 0xdc00 && len(d) >= i+12 && d[i+6] == '\\' && d[i+7] == 'u' && isLowSurrogate(hex4(d[i+8:])) {
					n = 12
				} else if !p.found() {
					p = textProblem{i, `invalid UTF-8: a \u escape of a lone surrogate`}
				}
			}
			i += n
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 && !p.found() {
				p = textProblem{i, "invalid UTF-8"}
			}
			i += size
		}
	}
	return i, p
}

func (s *textScan) space(i int) int {
	for i < len(s.data) && isSpace(s.data[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// hex4 reads the 4 hex digits of a \u escape, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

func isLowSurrogate(r rune) bool { return 0xdc00 <= r && r <= 0xdfff }

// keyIs reports whether the member name key, a JSON string that is valid
// text, is name.
func keyIs(key []byte, name string) bool {
	if len(key) == len(name)+2 && string(key[1:len(key)-1]) == name {
		return true
	}
	var s string
	return bytes.IndexByte(key, '\\') >= 0 && json.Unmarshal(key, &s) == nil && s == name
}

// objectPath is the Field of the object at path.
func objectPath(path string) string {
	if path == "" {
		return "$"
	}
	return path
}

// memberPath is the Field of the member named key (a JSON string that is
// valid text) of the object at path. A name that is not a plain one of at
// most maxEcho characters (a key hash would be longer) is not shown: the
// Field is then the object's. So is "subject" in the envelope, which would
// read as the message's subject.
func memberPath(path string, key []byte) string {
	var name string
	if json.Unmarshal(key, &name) != nil || !plainName(name) || path == "" && name == "subject" {
		return objectPath(path)
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

// plainName reports whether s is 1 to maxEcho letters, digits, '_' or '-'.
func plainName(s string) bool {
	if s == "" || len(s) > maxEcho {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
