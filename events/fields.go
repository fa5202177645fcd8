package events

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxEcho is the longest value an error quotes. Longer values are described
// by their length only, so a key hash (64 characters), wherever it was put,
// never reaches an error or a log line.
const maxEcho = 40

// fields reads the members of one JSON object. It keeps the first problem
// it finds in err; after that, every read returns a zero value.
type fields struct {
	path    string // JSON path of the object: "" for the envelope, "data"
	members []member
	err     *DecodeError
}

// name is the JSON path of member key.
func (f *fields) name(key string) string {
	if f.path == "" {
		return key
	}
	return f.path + "." + key
}

// fail records a problem with member key, unless one was found before.
func (f *fields) fail(key, format string, args ...any) {
	if f.err == nil {
		f.err = &DecodeError{Field: f.name(key), Reason: fmt.Sprintf(format, args...)}
	}
}

// value returns member key, the last of that name as encoding/json would,
// and its JSON kind, or nil and "" if it is missing or a problem was found
// before.
func (f *fields) value(key string) (*member, string) {
	if f.err != nil {
		return nil, ""
	}
	for i := len(f.members) - 1; i >= 0; i-- {
		if m := &f.members[i]; string(m.name) == key {
			return m, kind(m.raw)
		}
	}
	f.fail(key, "missing")
	return nil, ""
}

// text reads string member key. ok is false if the member is null (allowed
// only when nullable) or on a problem.
func (f *fields) text(key string, nullable bool) (s string, ok bool) {
	m, k := f.value(key)
	switch {
	case k == "string":
		return string(unquote(m.raw)), true
	case k == "null" && nullable:
	case k != "" && nullable:
		f.fail(key, "got %s, want string or null", k)
	case k != "":
		f.fail(key, "got %s, want string", k)
	}
	return "", false
}

// str reads a string member of 1 to max characters.
func (f *fields) str(key string, max int) string {
	s, ok := f.text(key, false)
	if ok && s == "" {
		f.fail(key, "empty, want 1 to %d characters", max)
	}
	if n := utf8.RuneCountInString(s); ok && n > max {
		f.fail(key, "got %d characters, want at most %d", n, max)
	}
	return s
}

// nullableStr reads a string member of at most max characters, or null.
func (f *fields) nullableStr(key string, max int) *string {
	s, ok := f.text(key, true)
	if !ok {
		return nil
	}
	if n := utf8.RuneCountInString(s); n > max {
		f.fail(key, "got %d characters, want at most %d", n, max)
	}
	return &s
}

// nullableTimestamp reads an RFC 3339 time member, or null.
func (f *fields) nullableTimestamp(key string) *time.Time {
	return f.parseTime(key, true)
}

// timestamp reads an RFC 3339 time member.
func (f *fields) timestamp(key string) time.Time {
	if t := f.parseTime(key, false); t != nil {
		return *t
	}
	return time.Time{}
}

func (f *fields) parseTime(key string, nullable bool) *time.Time {
	s, ok := f.text(key, nullable)
	if !ok {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		f.fail(key, "got %s, want an RFC 3339 time such as \"2026-06-05T10:00:00Z\"", quote(s))
		return nil
	}
	return &t
}

// uuid reads a UUID member in canonical form, any case, and returns it in
// lowercase.
func (f *fields) uuid(key string) string {
	s, ok := f.text(key, false)
	if ok && !IsUUID(s) {
		f.fail(key, "got %s, want a UUID (8-4-4-4-12 hex digits)", quote(s))
	}
	return strings.ToLower(s)
}

// oneOf reads a string member that must be a or b.
func (f *fields) oneOf(key, a, b string) string {
	s, ok := f.text(key, false)
	if ok && s != a && s != b {
		f.fail(key, "got %s, want %q or %q", quote(s), a, b)
	}
	return s
}

// eventType reads the type of the envelope, which must be known.
func (f *fields) eventType() Type {
	s, ok := f.text("type", false)
	if ok && !Type(s).Known() {
		f.fail("type", "got %s, want a known event type such as \"share.created\"", quote(s))
	}
	return Type(s)
}

// object reads an object member, whose own members the returned fields
// read. scan collected them: it descends into the envelope's data only.
func (f *fields) object(key string) *fields {
	obj := &fields{path: f.name(key)}
	switch m, k := f.value(key); {
	case k == "object":
		obj.members = m.sub
	case k != "":
		f.fail(key, "got %s, want object", k)
	}
	return obj
}

// keyID reads data.keyId, which must be usable as one subject token.
func (f *fields) keyID() string {
	s := f.str("keyId", maxKeyID)
	if i := strings.IndexFunc(s, notInToken); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		f.fail("keyId", "contains %q, which a subject token cannot hold", r)
	}
	return s
}

func notInToken(r rune) bool {
	return r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r)
}

// keyHash reads data.keyHash: 64 lowercase hex digits. Its errors never
// quote it.
func (f *fields) keyHash() string {
	s, ok := f.text("keyHash", false)
	if !ok {
		return ""
	}
	if n := utf8.RuneCountInString(s); n != 64 {
		f.fail("keyHash", "got %d characters, want 64 lowercase hex digits", n)
		return ""
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'F':
			f.fail("keyHash", "has uppercase hex digits, want lowercase")
			return ""
		case !isLowerHex(c):
			f.fail("keyHash", "has a character that is not a hex digit, want 64 lowercase hex digits")
			return ""
		}
	}
	return s
}

// shareBase reads data.shareBase, a share base (see ShareBase) or null.
func (f *fields) shareBase() *string {
	s, ok := f.text("shareBase", true)
	if !ok {
		return nil
	}
	base, err := ShareBase(s)
	if err != nil {
		f.fail("shareBase", "%s", err)
		return nil
	}
	return &base
}

// kind names the JSON type of a valid JSON value.
func kind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// IsUUID reports whether s is a UUID in canonical 8-4-4-4-12 form, any
// case. Ids are stored lowercase: compare strings.ToLower(s).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isLowerHex(c) && !('A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// quote shows a value in an error: quoted if it is short, else by its
// length only (see maxEcho).
func quote(s string) string {
	if n := utf8.RuneCountInString(s); n > maxEcho {
		return fmt.Sprintf("a %d-character string", n)
	}
	return strconv.Quote(s)
}

// quoteSubject quotes a subject for an error, cut to a readable length.
// Like quote, it shows a token longer than maxEcho by its length only: a
// key id comes from data and might be a key hash put in the wrong field.
func quoteSubject(s string) string {
	const max = 200
	tokens := strings.Split(s, ".")
	for i, tok := range tokens {
		if n := utf8.RuneCountInString(tok); n > maxEcho {
			tokens[i] = fmt.Sprintf("<%d characters>", n)
		}
	}
	if s = strings.Join(tokens, "."); len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
