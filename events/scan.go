package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Decode reads a message in one pass (scan): it checks the JSON syntax as
// encoding/json does, collects the members of the envelope and of data as
// raw values, and checks the text. The fields then read those members.
//
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

// A member is one member of a JSON object: its name, unquoted, and its
// raw value. sub holds the members of an object value that scan descended
// into: the envelope's data.
type member struct {
	name, raw []byte
	sub       []member
}

// maxDepth is encoding/json's limit on nesting.
const maxDepth = 10000

// scan reads data in one pass: it checks that data is valid JSON exactly as
// json.Valid does, and when it is an object returns its members (and in
// them those of data). It also returns the first string that is not valid
// text, as a *DecodeError whose Field is the member it is in: "id",
// "data.shareId", an unknown member ("version", "data.extra") wherever in
// its value the string is, or the object ("$", "data") when the bad string
// is a member name or the name cannot be shown (see memberPath). Its Reason
// never shows the bytes.
func scan(data []byte) (env []member, valid bool, bad *DecodeError) {
	s := scanner{data: data}
	i := s.space(0)
	if i < len(data) && data[i] == '{' {
		env = make([]member, 0, 8)
		i = s.object(i, 1, "", &env)
	} else {
		i = s.value(i, 0)
	}
	if s.space(i) != len(data) {
		s.invalid = true
	}
	return env, !s.invalid, s.bad
}

// A scanner reads one message. Its methods return the offset after what
// they read, or len(data) once invalid is set.
type scanner struct {
	data    []byte
	invalid bool         // data is not valid JSON
	first   textProblem  // the first text problem of the value being read
	bad     *DecodeError // the first text problem of the message
}

// fail records that data is not valid JSON.
func (s *scanner) fail() int {
	s.invalid = true
	return len(s.data)
}

// refuse records problem p of the member at field, unless one was found
// before.
func (s *scanner) refuse(field, prefix string, p textProblem) {
	if s.bad == nil {
		s.bad = &DecodeError{Field: field, Reason: fmt.Sprintf("%s%s (at byte %d)", prefix, p.what, p.off+1)}
	}
}

// value reads the value at data[i], at nesting depth.
func (s *scanner) value(i, depth int) int {
	if i >= len(s.data) {
		return s.fail()
	}
	switch c := s.data[i]; {
	case c == '"':
		end, p := s.str(i)
		if !s.first.found() {
			s.first = p
		}
		return end
	case c == '{':
		return s.object(i, depth+1, "", nil)
	case c == '[':
		return s.array(i, depth+1)
	case c == '-' || '0' <= c && c <= '9':
		return s.number(i)
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	}
	return s.fail()
}

// object reads the object at data[i]. With ms, it appends the object's
// members to *ms and refuses text problems member by member, path being
// the object's ("" for the envelope, "data"); it descends into the
// envelope's data only. Without ms, problems go to s.first.
func (s *scanner) object(i, depth int, path string, ms *[]member) int {
	if depth > maxDepth {
		return s.fail()
	}
	d := s.data
	if i = s.space(i + 1); i < len(d) && d[i] == '}' {
		return i + 1
	}
	for !s.invalid {
		if i >= len(d) || d[i] != '"' {
			return s.fail()
		}
		end, p := s.str(i)
		name := d[i:end]
		if ms == nil && !s.first.found() {
			s.first = p
		} else if ms != nil && p.found() {
			s.refuse(objectPath(path), "member name: ", p)
		}
		if i = s.space(end); i >= len(d) || d[i] != ':' {
			return s.fail()
		}
		i = s.space(i + 1)
		if ms == nil {
			i = s.value(i, depth)
		} else {
			i = s.member(i, depth, path, name, ms)
		}
		switch i = s.space(i); {
		case i < len(d) && d[i] == ',':
			i = s.space(i + 1)
		case i < len(d) && d[i] == '}':
			return i + 1
		default:
			return s.fail()
		}
	}
	return len(d)
}

// member reads the value at data[i] of the member named q (a JSON string)
// of the object at path, appends it to *ms and refuses its text problem.
func (s *scanner) member(i, depth int, path string, q []byte, ms *[]member) int {
	m := member{name: unquote(q)}
	start := i
	if path == "" && i < len(s.data) && s.data[i] == '{' && string(m.name) == "data" {
		m.sub = make([]member, 0, 8)
		i = s.object(i, depth+1, "data", &m.sub)
	} else {
		outer := s.first
		s.first = noProblem
		i = s.value(i, depth)
		if s.first.found() {
			s.refuse(memberPath(path, m.name), "", s.first)
		}
		s.first = outer
	}
	m.raw = s.data[start:i]
	*ms = append(*ms, m)
	return i
}

// array reads the array at data[i].
func (s *scanner) array(i, depth int) int {
	if depth > maxDepth {
		return s.fail()
	}
	d := s.data
	if i = s.space(i + 1); i < len(d) && d[i] == ']' {
		return i + 1
	}
	for !s.invalid {
		switch i = s.space(s.value(i, depth)); {
		case i < len(d) && d[i] == ',':
			i = s.space(i + 1)
		case i < len(d) && d[i] == ']':
			return i + 1
		default:
			return s.fail()
		}
	}
	return len(d)
}

// number reads the number at data[i].
func (s *scanner) number(i int) int {
	d := s.data
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = s.digits(i)
	default:
		return s.fail()
	}
	if i < len(d) && d[i] == '.' {
		if i++; i >= len(d) || !isDigit(d[i]) {
			return s.fail()
		}
		i = s.digits(i)
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		if i++; i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return s.fail()
		}
		i = s.digits(i)
	}
	return i
}

func (s *scanner) digits(i int) int {
	for i < len(s.data) && isDigit(s.data[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (s *scanner) literal(i int, lit string) int {
	if !bytes.HasPrefix(s.data[i:], []byte(lit)) {
		return s.fail()
	}
	return i + len(lit)
}

// str reads the string at data[i] and returns the offset after it and its
// first text problem.
func (s *scanner) str(i int) (int, textProblem) {
	d, p := s.data, noProblem
	for i++; i < len(d); {
		switch c := d[i]; {
		case c == '"':
			return i + 1, p
		case c < ' ':
			return s.fail(), p
		case c == '\\':
			n, q := s.escape(i)
			if q.found() && !p.found() {
				p = q
			}
			i += n
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
	return s.fail(), p
}

// escape reads the escape at data[i] and returns its length and its text
// problem: a \u escape of a surrogate must be the first of a pair.
func (s *scanner) escape(i int) (int, textProblem) {
	d := s.data
	if i+1 >= len(d) {
		return 1, noProblem // str fails at the end
	}
	switch d[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, noProblem
	case 'u':
	default:
		s.invalid = true
		return len(d) - i, noProblem
	}
	r := hex4(d[i+2:])
	switch {
	case r < 0:
		s.invalid = true
		return len(d) - i, noProblem
	case !utf16.IsSurrogate(r):
		return 6, noProblem
	case r < 0xdc00 && len(d) >= i+12 && d[i+6] == '\\' && d[i+7] == 'u' && isLowSurrogate(hex4(d[i+8:])):
		return 12, noProblem
	}
	return 6, textProblem{i, `invalid UTF-8: a \u escape of a lone surrogate`}
}

func (s *scanner) space(i int) int {
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

// unquote returns the text of the JSON string q, which is valid text.
func unquote(q []byte) []byte {
	if bytes.IndexByte(q, '\\') < 0 {
		return q[1 : len(q)-1]
	}
	var s string
	_ = json.Unmarshal(q, &s) // q is valid
	return []byte(s)
}

// objectPath is the Field of the object at path.
func objectPath(path string) string {
	if path == "" {
		return "$"
	}
	return path
}

// memberPath is the Field of the member named name of the object at path.
// A name that is not a plain one of at most maxEcho characters (a key hash
// would be longer) is not shown: the Field is then the object's. So is
// "subject" in the envelope, which would read as the message's subject.
func memberPath(path string, name []byte) string {
	switch {
	case !plainName(name), path == "" && string(name) == "subject":
		return objectPath(path)
	case path == "":
		return string(name)
	}
	return path + "." + string(name)
}

// plainName reports whether s is 1 to maxEcho letters, digits, '_' or '-'.
func plainName(s []byte) bool {
	if len(s) == 0 || len(s) > maxEcho {
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
