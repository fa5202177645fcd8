package main

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/craftkit/sharesd/events"
)

// fixedSizes are the share counts of the renders the API load reads. Each
// size gets fixedPerSize renders in project 0 with exactly that many shares.
var fixedSizes = []int{1, 10, 100, 1000}

const fixedPerSize = 4

// workloadConfig sizes the generated workload.
type workloadConfig struct {
	Projects int
	Renders  int
	Shares   int
	Revoked  float64 // fraction of shares revoked
	Views    int
	Seed     uint64
}

// A workload is a seeded, reproducible set of contract events. Events are
// numbered in stream order: one apikey.created per project, one
// render.created per render, the shares, the revocations, then the views.
// The JSON of an event is made on demand from these tables, so the workload
// costs a few dozen bytes per event in memory.
type workload struct {
	cfg      workloadConfig
	base     time.Time
	projects []string // project ids
	keys     []string // plaintext API key of each project (the bench's own)
	renders  []renderRow
	shares   []shareRow
	revoked  []int32 // share index of each revocation
	views    []int32 // share index of each view
	// fixed[size] lists the renders with exactly size shares.
	fixed map[int][]int32
}

type renderRow struct {
	id      string
	project int32
	shares  int32
}

type shareRow struct {
	id      string
	render  int32
	created int64 // ms
	email   bool  // channel email with a recipient, else link
	message int16 // length of the message, -1 for null
	expires bool
	token   string
}

// Event kinds in stream order.
const (
	kindKey = iota
	kindRender
	kindShare
	kindRevoke
	kindView
)

// newWorkload draws the workload. Shares go to renders with a Zipf-like
// skew (a few renders hold many shares, most hold a few or none), and views
// go to shares with the same kind of skew. The draws come in a fixed order
// from one generator seeded with cfg.Seed, so a seed makes the same events.
func newWorkload(cfg workloadConfig) (*workload, error) {
	nFixed := fixedPerSize * len(fixedSizes)
	fixedShares := 0
	for _, s := range fixedSizes {
		fixedShares += fixedPerSize * s
	}
	if cfg.Projects < 1 || cfg.Renders < nFixed+1 || cfg.Shares < fixedShares+1 {
		return nil, fmt.Errorf("workload too small: want at least 1 project, %d renders and %d shares (the fixed-size renders)", nFixed+1, fixedShares+1)
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	w := &workload{cfg: cfg, base: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), fixed: map[int][]int32{}}
	for i := range cfg.Projects {
		w.projects = append(w.projects, uuid(r))
		w.keys = append(w.keys, events.KeyPrefix(events.EnvLive)+"bench_"+strconv.Itoa(i)+"_"+token(r, 24))
	}
	w.renders = make([]renderRow, cfg.Renders)
	for i := range w.renders {
		w.renders[i] = renderRow{id: uuid(r), project: int32(r.IntN(cfg.Projects))}
	}
	w.drawShares(r, w.shareOwners(r))
	for _, i := range r.Perm(cfg.Shares)[:int(float64(cfg.Shares)*cfg.Revoked)] {
		w.revoked = append(w.revoked, int32(i))
	}
	w.views = make([]int32, cfg.Views)
	sharePerm := r.Perm(cfg.Shares)
	zv := rand.NewZipf(r, 1.1, 2, uint64(cfg.Shares-1))
	for i := range w.views {
		w.views[i] = int32(sharePerm[zv.Uint64()])
	}
	return w, nil
}

// shareOwners returns the render of each share: first the fixed-size
// renders, which belong to project 0, with exactly their size; then the
// others, skewed, the popular ones spread over the index space by a
// permutation.
func (w *workload) shareOwners(r *rand.Rand) []int32 {
	owner := make([]int32, 0, w.cfg.Shares)
	i := 0
	for _, size := range fixedSizes {
		for range fixedPerSize {
			w.renders[i].project = 0
			w.fixed[size] = append(w.fixed[size], int32(i))
			for range size {
				owner = append(owner, int32(i))
			}
			i++
		}
	}
	rest := w.cfg.Renders - i
	perm := r.Perm(rest)
	z := rand.NewZipf(r, 1.1, 2, uint64(rest-1))
	for len(owner) < w.cfg.Shares {
		owner = append(owner, int32(i+perm[z.Uint64()]))
	}
	return owner
}

// drawShares draws a share for each render in owner, 7s apart.
func (w *workload) drawShares(r *rand.Rand, owner []int32) {
	w.shares = make([]shareRow, len(owner))
	for i, rd := range owner {
		s := shareRow{
			id:      uuid(r),
			render:  rd,
			created: w.base.Add(time.Duration(i) * 7 * time.Second).UnixMilli(),
			email:   r.IntN(10) < 4,
			message: -1,
			expires: r.IntN(2) == 0,
			token:   "cks_" + token(r, 32),
		}
		if r.IntN(10) < 3 {
			s.message = int16(20 + r.IntN(120))
		}
		w.shares[i] = s
		w.renders[rd].shares++
	}
}

// Len is the number of events in the workload.
func (w *workload) Len() int {
	return len(w.projects) + len(w.renders) + len(w.shares) + len(w.revoked) + len(w.views)
}

// span is the range of event indexes of one kind.
func (w *workload) span(kind int) (from, to int) {
	sizes := []int{len(w.projects), len(w.renders), len(w.shares), len(w.revoked), len(w.views)}
	for k := range kind {
		from += sizes[k]
	}
	return from, from + sizes[kind]
}

// kindOf returns the kind of event i and its index within that kind.
func (w *workload) kindOf(i int) (int, int) {
	for k := kindKey; k <= kindView; k++ {
		from, to := w.span(k)
		if i < to {
			return k, i - from
		}
	}
	return -1, -1
}

// Event returns the subject, id and JSON of event i (0-based stream order).
func (w *workload) Event(i int, buf []byte) (subject, id string, data []byte) {
	kind, j := w.kindOf(i)
	occurred := w.base.Add(time.Duration(i) * time.Millisecond).UnixMilli()
	id = "bench-" + strconv.FormatUint(w.cfg.Seed, 10) + "-" + strconv.Itoa(i)
	switch kind {
	case kindKey:
		keyID := "key_bench_" + strconv.Itoa(j)
		b := envelope(buf, id, events.TypeAPIKeyCreated, occurred, w.projects[j], "")
		b = append(b, `"keyId":"`+keyID+`","keyHash":"`+events.KeyHash(w.keys[j])+`","environment":"`+events.EnvLive+`"}}`...)
		return events.Subject(events.TypeAPIKeyCreated, keyID), id, b
	case kindRender:
		rd := w.renders[j]
		b := envelope(buf, id, events.TypeRenderCreated, occurred, w.projects[rd.project], rd.id)
		return events.Subject(events.TypeRenderCreated, rd.id), id, append(b, '}', '}')
	case kindShare:
		return w.shareCreated(buf, id, occurred, j)
	case kindRevoke:
		s := w.shares[w.revoked[j]]
		rd := w.renders[s.render]
		b := envelope(buf, id, events.TypeShareRevoked, occurred, w.projects[rd.project], rd.id)
		b = append(b, `"shareId":"`+s.id+`","revokedAt":`...)
		b = appendTime(b, occurred)
		b = append(b, `,"reason":"revoked_by_partner"}}`...)
		return events.Subject(events.TypeShareRevoked, rd.id), id, b
	default:
		return w.viewed(buf, id, occurred, int(w.views[j]))
	}
}

// LiveView returns a share.viewed event that is not part of the stored
// workload, numbered n, on a share drawn by r with the views' skew.
func (w *workload) LiveView(buf []byte, n int, share int) (subject, id string, data []byte) {
	id = "bench-" + strconv.FormatUint(w.cfg.Seed, 10) + "-live-" + strconv.Itoa(n)
	return w.viewed(buf, id, time.Now().UnixMilli(), share)
}

func (w *workload) viewed(buf []byte, id string, at int64, share int) (string, string, []byte) {
	s := w.shares[share]
	rd := w.renders[s.render]
	b := envelope(buf, id, events.TypeShareViewed, at, w.projects[rd.project], rd.id)
	b = append(b, `"shareId":"`+s.id+`","viewedAt":`...)
	b = appendTime(b, at)
	b = append(b, '}', '}')
	return events.Subject(events.TypeShareViewed, rd.id), id, b
}

func (w *workload) shareCreated(buf []byte, id string, occurred int64, j int) (string, string, []byte) {
	s := w.shares[j]
	rd := w.renders[s.render]
	b := envelope(buf, id, events.TypeShareCreated, occurred, w.projects[rd.project], rd.id)
	b = append(b, `"shareId":"`+s.id+`","channel":`...)
	if s.email {
		b = append(b, `"email","recipientEmail":"recipient`+strconv.Itoa(j)+`@example.com"`...)
	} else {
		b = append(b, `"link","recipientEmail":null`...)
	}
	b = append(b, `,"message":`...)
	if s.message < 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = append(b, lorem[:s.message]...)
		b = append(b, '"')
	}
	b = append(b, `,"expiresAt":`...)
	if s.expires {
		b = appendTime(b, s.created+90*24*3600*1000)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"createdAt":`...)
	b = appendTime(b, s.created)
	b = append(b, `,"shareToken":"`+s.token+`"}}`...)
	return events.Subject(events.TypeShareCreated, rd.id), id, b
}

const lorem = "Here is the signed agreement and the final render of the kitchen, with the changes we discussed on Tuesday. Let me know what you think of it!"

func envelope(b []byte, id string, t events.Type, occurred int64, project, render string) []byte {
	b = append(b[:0], `{"id":"`+id+`","type":"`+string(t)+`","occurredAt":`...)
	b = appendTime(b, occurred)
	b = append(b, `,"projectId":"`+project+`"`...)
	if render != "" {
		b = append(b, `,"renderId":"`+render+`"`...)
	}
	return append(b, `,"data":{`...)
}

func appendTime(b []byte, ms int64) []byte {
	b = append(b, '"')
	b = events.AppendMillis(b, ms)
	return append(b, '"')
}

func uuid(r *rand.Rand) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func token(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}
