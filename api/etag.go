package api

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// A list's ETag is "ver.projectVer.tag": the render's list version, its
// project's share-base version, and a tag made of a fingerprint of this
// server's configuration (configTag) followed by the list's salt (the
// generation it was read from and the render's repairs: see
// readmodel.Versions) in saltDigits base-36 digits. So it changes exactly
// when the body would.

// saltDigits is the width of a salt in an ETag: 36^7 > 2^32.
const saltDigits = 7

// configTag fingerprints what else shapes the body: the default share base.
func configTag(cfg Config) string {
	h := fnv.New32a()
	h.Write([]byte(cfg.ShareBase))
	return strconv.FormatUint(uint64(h.Sum32()), 36)
}

func etag(v readmodel.Versions, tag string) string {
	b := make([]byte, 0, 2*20+len(tag)+saltDigits+4)
	b = append(b, '"')
	b = strconv.AppendUint(b, v.Ver, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, v.ProjectVer, 10)
	b = append(b, '.')
	b = append(b, tag...)
	salt := strconv.FormatUint(uint64(v.Salt), 36)
	for range saltDigits - len(salt) {
		b = append(b, '0')
	}
	b = append(b, salt...)
	return string(append(b, '"'))
}

// ifNoneMatch is a request's If-None-Match header, read against the ETags
// of this configuration.
type ifNoneMatch struct {
	header, tag string
	star        bool // "*": whatever exists
	// newest is the newest of our ETags in it (the one most likely
	// current, which Redis is asked to confirm); nil when it holds none.
	newest *readmodel.Versions
}

func parseIfNoneMatch(h, tag string) ifNoneMatch {
	m := ifNoneMatch{header: h, tag: tag}
	if h == "" {
		return m
	}
	if strings.TrimSpace(h) == "*" {
		m.star, m.newest = true, &readmodel.Versions{Any: true}
		return m
	}
	for rest := h; rest != ""; {
		var t string
		t, rest, _ = strings.Cut(rest, ",")
		if v, ok := parseETag(t, tag); ok && (m.newest == nil || v.Ver > m.newest.Ver ||
			v.Ver == m.newest.Ver && v.ProjectVer > m.newest.ProjectVer) {
			m.newest = &v
		}
	}
	return m
}

// matches reports whether the client has v: the header is "*" or any of
// its entity tags, weak or strong, is our ETag of v.
func (m ifNoneMatch) matches(v readmodel.Versions) bool {
	if m.star {
		return true
	}
	if m.newest == nil {
		return false
	}
	for rest := m.header; rest != ""; {
		var t string
		t, rest, _ = strings.Cut(rest, ",")
		if got, ok := parseETag(t, m.tag); ok && got == v {
			return true
		}
	}
	return false
}

// parseETag reads one entity tag, [W/]"ver.projectVer.tag", made by etag
// with this configuration's tag; anything else is not ours.
func parseETag(t, tag string) (readmodel.Versions, bool) {
	t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
	if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' {
		return readmodel.Versions{}, false
	}
	ver, rest, ok1 := strings.Cut(t[1:len(t)-1], ".")
	pver, got, ok2 := strings.Cut(rest, ".")
	salt, ok3 := strings.CutPrefix(got, tag)
	if !ok1 || !ok2 || !ok3 || len(salt) != saltDigits || strings.ContainsFunc(salt, isUpper) {
		return readmodel.Versions{}, false
	}
	v, err1 := strconv.ParseUint(ver, 10, 64)
	pv, err2 := strconv.ParseUint(pver, 10, 64)
	s, err3 := strconv.ParseUint(salt, 36, 32)
	return readmodel.Versions{Ver: v, ProjectVer: pv, Salt: uint32(s)}, err1 == nil && err2 == nil && err3 == nil
}

func isUpper(r rune) bool { return 'A' <= r && r <= 'Z' }
