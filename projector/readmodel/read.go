package readmodel

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// List is one render's share list as read from Redis, not yet rendered.
type List struct {
	Seq         uint64 // the render's applied stream sequence
	Ver         uint64 // sequence of the last event that changed the list
	ProjectVer  uint64 // sequence of the last change to the project's share base
	Salt        uint32 // fingerprint of the generation and the render's repairs (see Versions)
	ShareBase   string // the project's share base, "" for the default
	NotModified bool   // the caller's versions are current; no shares were read
	packed      []byte
}

// Key is an API key as the API needs it.
type Key struct {
	ID          string
	ProjectID   string
	Environment string
	Revoked     bool
}

// Versions is what a caller already has of a render: the list and project
// versions of its ETag, or Any (If-None-Match: *) for whatever exists.
// Salt fingerprints what else the list depends on: the generation it was
// read from and the render's repairs (rebuild -render), either of which
// may change the list at the same versions.
type Versions struct {
	Ver, ProjectVer uint64
	Salt            uint32
	Any             bool
}

// List reads the shares of renderID in projectID, in one round trip with the
// resolution of the active generation. When have matches the current
// versions it returns NotModified without reading the shares. It returns
// ErrNotFound for an unknown, deleted or foreign render and ErrUnavailable
// when no generation is active.
func (s *Store) List(ctx context.Context, projectID, renderID string, have *Versions) (*List, error) {
	ifVer := ""
	switch {
	case have != nil && have.Any:
		ifVer = "*"
	case have != nil:
		ifVer = strconv.FormatUint(have.Ver, 10)
	}
	var (
		res     any
		proj    []any
		listErr error
		readGen string
	)
	err := s.resolve(ctx, func(p redis.Pipeliner, gen string) func() error {
		read := evalsha(ctx, p, readRender, renderKeysOf(gen, renderID).read(), projectID, ifVer)
		pc := p.HMGet(ctx, projectKey(gen, projectID), "base", "ver")
		return func() error {
			res, listErr = read.Result()
			readGen = gen
			proj = pc.Val()
			return pc.Err()
		}
	})
	if err != nil {
		return nil, err
	}
	if errors.Is(listErr, redis.Nil) {
		return nil, ErrNotFound
	}
	if listErr != nil {
		return nil, fmt.Errorf("list %s: %w", renderID, listErr)
	}
	l, read := listOf(res, proj, readGen)
	switch {
	case l == nil:
		return nil, fmt.Errorf("list %s: unexpected reply %T", renderID, res)
	case !read && (have.Any || have.ProjectVer == l.ProjectVer && have.Salt == l.Salt):
		l.NotModified = true
	case !read: // the project, generation or repairs changed but the list version did not: read the shares
		return s.List(ctx, projectID, renderID, nil)
	case have != nil && have.Ver == l.Ver && have.ProjectVer == l.ProjectVer && have.Salt == l.Salt:
		l.NotModified = true
	}
	return l, nil
}

// Versions returns the versions of l, for an ETag.
func (l *List) Versions() Versions {
	return Versions{Ver: l.Ver, ProjectVer: l.ProjectVer, Salt: l.Salt}
}

// salt fingerprints the generation gen and a render's repair count rep (see
// Versions): FNV-1a.
func salt(gen, rep string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(gen))
	h.Write([]byte{0})
	h.Write([]byte(rep))
	return h.Sum32()
}

// listOf makes a List of readRender's reply from generation gen and the
// project's base and version, and reports whether the reply holds the
// shares. It returns nil
// for a reply of another shape.
func listOf(res any, proj []any, gen string) (*List, bool) {
	parts, _ := res.([]any)
	if len(parts) < replyPacked {
		return nil, false
	}
	rep, _ := parts[replyRep].(string)
	l := &List{Seq: uintOf(parts[replySeq]), Ver: uintOf(parts[replyVer]), Salt: salt(gen, rep)}
	if base, ok := proj[0].(string); ok {
		l.ShareBase = base
	}
	if v, ok := proj[1].(string); ok {
		l.ProjectVer, _ = strconv.ParseUint(v, 10, 64)
	}
	if len(parts) == replyPacked {
		return l, false
	}
	packed, _ := parts[replyPacked].(string)
	l.packed = newestFirst([]byte(packed))
	return l, true
}

// newestFirst orders the shares of a packed list (see readRender, which
// returns them in hash order) newest createdAt first, ties by id
// descending, as the contract lists them. A list that does not parse is
// returned as it is, for Shares to report. It allocates twice whatever the
// list's length.
func newestFirst(packed []byte) []byte {
	type span struct {
		created  int64
		id, body []byte
	}
	spans := make([]span, 0, (&List{packed: packed}).Len())
	for b := packed; len(b) > 0; {
		id, rec, rest, ok := splitShare(b)
		created, okc := createdAt(rec)
		if !ok || !okc {
			return packed
		}
		spans = append(spans, span{created, id, b[:len(b)-len(rest)]})
		b = rest
	}
	slices.SortFunc(spans, func(a, b span) int {
		if c := cmp.Compare(b.created, a.created); c != 0 {
			return c
		}
		return bytes.Compare(b.id, a.id)
	})
	out := make([]byte, 0, len(packed))
	for _, s := range spans {
		out = append(out, s.body...)
	}
	return out
}

// The elements of readRender's reply: {project, seq, ver, rep[, packed]}.
const (
	replySeq    = 1
	replyVer    = 2
	replyRep    = 3
	replyPacked = 4
)

// read is the keys readRender takes: render, recs, clicks, revoked.
func (k renderKeys) read() []string { return []string{k[kRender], k[kRecs], k[kClicks], k[kRevoked]} }

func uintOf(v any) uint64 {
	s, _ := v.(string)
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

// A Share is one share of a List as stored, for the API to render: the
// contract's fields without the share URL, which the API makes from the
// token. Its byte slices point into the List and are valid as long as it
// is; they must not be changed. Times are milliseconds since the epoch.
type Share struct {
	ID             []byte
	Channel        string // "link" or "email"
	RecipientEmail NullString
	Message        NullString
	RevokedAt      NullMillis
	RevokedReason  NullString
	ExpiresAt      NullMillis
	CreatedAt      int64
	ShareToken     []byte
	ClickCount     int64
}

// NullString is a string that may be null (Valid false).
type NullString struct {
	B     []byte
	Valid bool
}

// NullMillis is a time in milliseconds since the epoch that may be null
// (Valid false).
type NullMillis struct {
	Ms    int64
	Valid bool
}

// Shares yields the list's shares, newest first (ties by id descending).
// A corrupt share ends it with an error. It allocates nothing.
func (l *List) Shares() iter.Seq2[Share, error] {
	return func(yield func(Share, error) bool) {
		for b := l.packed; len(b) > 0; {
			s, rest, err := nextShare(b)
			if err != nil {
				yield(Share{}, err)
				return
			}
			if !yield(s, nil) {
				return
			}
			b = rest
		}
	}
}

// nextShare reads the first share of a packed list (see readRender): the
// netstrings of its id, record and click count, then its revocation's
// netstring or "-".
func nextShare(b []byte) (Share, []byte, error) {
	var id, rec, clicks, rev []byte
	var ok [4]bool
	id, b, ok[0] = netstring(b)
	rec, b, ok[1] = netstring(b)
	clicks, b, ok[2] = netstring(b)
	if len(b) > 0 && b[0] == '-' {
		b, ok[3] = b[1:], true
	} else {
		rev, b, ok[3] = netstring(b)
	}
	if ok != [4]bool{true, true, true, true} {
		return Share{}, b, errCorrupt
	}
	n, err := strconv.ParseInt(string(clicks), 10, 64)
	if err != nil {
		return Share{}, b, errCorrupt
	}
	s, err := decodeShare(id, rec, rev, n)
	return s, b, err
}

// splitShare splits the first share off a packed list without decoding it:
// its id and record, and what follows it.
func splitShare(b []byte) (id, rec, rest []byte, ok bool) {
	if id, b, ok = netstring(b); !ok {
		return nil, nil, b, false
	}
	if rec, b, ok = netstring(b); !ok {
		return nil, nil, b, false
	}
	if _, b, ok = netstring(b); !ok {
		return nil, nil, b, false
	}
	if len(b) > 0 && b[0] == '-' {
		return id, rec, b[1:], true
	}
	_, b, ok = netstring(b)
	return id, rec, b, ok
}

// Len is the number of shares in the list.
func (l *List) Len() int {
	n := 0
	for b := l.packed; len(b) > 0; n++ {
		_, _, rest, ok := splitShare(b)
		if !ok {
			return n
		}
		b = rest
	}
	return n
}

// netstring splits "<len>:<bytes>" off the front of b.
func netstring(b []byte) (val, rest []byte, ok bool) {
	n := 0
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int(b[i]-'0')
	}
	if i == 0 || i >= len(b) || b[i] != ':' || len(b)-i-1 < n {
		return nil, b, false
	}
	return b[i+1 : i+1+n], b[i+1+n:], true
}

// Key looks up an API key by the lowercase hex SHA-256 of its plaintext.
func (s *Store) Key(ctx context.Context, hash string) (Key, error) {
	var val string
	var getErr error
	err := s.resolve(ctx, func(p redis.Pipeliner, gen string) func() error {
		c := p.HGet(ctx, byHashKey(gen), hash)
		return func() error { val, getErr = c.Result(); return nil }
	})
	if err != nil {
		return Key{}, err
	}
	if errors.Is(getErr, redis.Nil) {
		return Key{}, ErrNotFound
	}
	if getErr != nil {
		return Key{}, fmt.Errorf("key lookup: %w", getErr)
	}
	f := strings.SplitN(val, ":", 4)
	if len(f) != 4 {
		return Key{}, errors.New("key lookup: corrupt index entry")
	}
	return Key{Revoked: f[0] == "1", Environment: f[1], ProjectID: f[2], ID: f[3]}, nil
}

// resolve runs the reads that queue adds to a pipeline against the active
// generation, reading the generation pointer in the same round trip. It
// guesses the generation from the last read; when the guess was wrong (a
// rebuild was swapped in) it runs once more with the right one. queue
// returns a function that collects its results once the pipeline ran.
func (s *Store) resolve(ctx context.Context, queue func(p redis.Pipeliner, gen string) func() error) error {
	guess := ""
	if g := s.gen.Load(); g != nil {
		guess = *g
	}
	for attempt := 0; attempt < 3; attempt++ {
		p := s.rdb.Pipeline()
		active := p.HGet(ctx, ctlKey(), fieldActive)
		var collect func() error
		if guess != "" {
			collect = queue(p, guess)
		}
		_, err := p.Exec(ctx)
		if isNoScript(err) {
			if err := s.LoadScripts(ctx); err != nil {
				return err
			}
			continue
		}
		gen, aerr := active.Result()
		switch {
		case errors.Is(aerr, redis.Nil):
			return ErrUnavailable
		case aerr != nil:
			return fmt.Errorf("resolve generation: %w", aerr)
		}
		if gen != guess {
			s.gen.Store(&gen)
			guess = gen
			continue
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		return collect()
	}
	return errors.New("readmodel: active generation keeps changing")
}
