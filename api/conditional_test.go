package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// TestConditionalGet walks one render through events that do and do not
// change its list, checking after each that the ETag moved exactly when
// the body did.
func TestConditionalGet(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
		eventstest.ShareCreated(projectA, renderA, "s2", "2026-06-05T10:01:00Z"),
	)
	srv := w.serve(api.Config{})

	first := get(t, srv, renderA, liveKey)
	tag := first.header.Get("ETag")
	if !strings.HasPrefix(tag, `"`) || !strings.HasSuffix(tag, `"`) || len(tag) < 3 {
		t.Fatalf("ETag = %q, want a strong entity tag", tag)
	}

	t.Run("If-None-Match with the ETag answers 304 without a body", func(t *testing.T) {
		r := get(t, srv, renderA, liveKey, "If-None-Match: "+tag)
		if r.status != http.StatusNotModified || len(r.body) != 0 {
			t.Fatalf("status %d body %q, want 304 and no body", r.status, r.body)
		}
		if got := r.header.Get("ETag"); got != tag {
			t.Errorf("ETag = %q, want %q", got, tag)
		}
		if got, want := r.header.Get("X-Projection-Seq"), first.header.Get("X-Projection-Seq"); got != want {
			t.Errorf("X-Projection-Seq = %q, want %q", got, want)
		}
	})

	var viewOp readmodel.Op // a view of s1, rerun below
	steps := []struct {
		name    string
		change  func() []readmodel.Outcome
		want    readmodel.Outcome
		changed bool
	}{
		{"share.viewed of a listed share changes it", func() []readmodel.Outcome {
			ops := w.ops(eventstest.ShareViewed(projectA, renderA, "s1").WithID("view-1"))
			viewOp = ops[0]
			return w.applyOps(ops)
		}, readmodel.Applied, true},
		{"the same view rerun at its sequence (stale) does not", func() []readmodel.Outcome {
			return w.applyOps([]readmodel.Op{viewOp})
		}, readmodel.Stale, false},
		{"the same view id under a new sequence (duplicate) does not", func() []readmodel.Outcome {
			return w.apply(eventstest.ShareViewed(projectA, renderA, "s1").WithID("view-1"))
		}, readmodel.Duplicate, false},
		{"a view of a share not created yet does not", func() []readmodel.Outcome {
			return w.apply(eventstest.ShareViewed(projectA, renderA, "s3"))
		}, readmodel.Applied, false},
		{"that share's creation does", func() []readmodel.Outcome {
			return w.apply(eventstest.ShareCreated(projectA, renderA, "s3", "2026-06-05T10:02:00Z"))
		}, readmodel.Applied, true},
		{"a second share.created of a listed share does not", func() []readmodel.Outcome {
			return w.apply(eventstest.ShareCreated(projectA, renderA, "s3", "2026-06-05T11:00:00Z").With("message", "other"))
		}, readmodel.Applied, false},
		{"a revocation does", func() []readmodel.Outcome {
			return w.apply(eventstest.ShareRevoked(projectA, renderA, "s2", "2026-06-05T12:00:00Z", "revoked_by_partner"))
		}, readmodel.Applied, true},
		{"a second revocation does not", func() []readmodel.Outcome {
			return w.apply(eventstest.ShareRevoked(projectA, renderA, "s2", "2026-06-05T13:00:00Z", "other"))
		}, readmodel.Applied, false},
		{"an event of another project for the render does not", func() []readmodel.Outcome {
			return w.apply(eventstest.ShareViewed(projectB, renderA, "s1"))
		}, readmodel.Mismatch, false},
		{"an event of another render does not", func() []readmodel.Outcome {
			return w.apply(eventstest.ShareCreated(projectA, renderB, "s9", "2026-06-05T10:00:00Z"))
		}, readmodel.Applied, false},
		{"project.updated of another project does not", func() []readmodel.Outcome {
			return w.apply(eventstest.ProjectUpdated(projectB, "https://b.example.com"))
		}, readmodel.Applied, false},
		{"project.updated of the render's project does", func() []readmodel.Outcome {
			return w.apply(eventstest.ProjectUpdated(projectA, "https://a.example.com"))
		}, readmodel.Applied, true},
		{"project.updated back to null does", func() []readmodel.Outcome {
			return w.apply(eventstest.ProjectUpdated(projectA, nil))
		}, readmodel.Applied, true},
	}
	prev := first
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			if out := st.change(); out[0] != st.want {
				t.Fatalf("outcome %v, want %v", out[0], st.want)
			}
			r := get(t, srv, renderA, liveKey, "If-None-Match: "+prev.header.Get("ETag"))
			switch {
			case st.changed && r.status != http.StatusOK:
				t.Fatalf("status %d with the previous ETag, want 200", r.status)
			case st.changed && r.header.Get("ETag") == prev.header.Get("ETag"):
				t.Fatalf("ETag stayed %s", r.header.Get("ETag"))
			case !st.changed && r.status != http.StatusNotModified:
				t.Fatalf("status %d with the previous ETag, want 304; body %s", r.status, r.body)
			case !st.changed && r.header.Get("ETag") != prev.header.Get("ETag"):
				t.Fatalf("ETag = %s, want unchanged %s", r.header.Get("ETag"), prev.header.Get("ETag"))
			}
			// The ETag moves exactly when the body does.
			now := get(t, srv, renderA, liveKey)
			if sameBody := string(now.body) == string(prev.body); sameBody == st.changed {
				t.Fatalf("body changed = %v, want %v", !sameBody, st.changed)
			}
			if st.changed {
				prev = now
			}
		}) {
			return
		}
	}
	if got := get(t, srv, renderA, liveKey).shares(t); len(got) != 3 || got[0].ID != "s3" || got[0].ClickCount != 1 || got[2].ClickCount != 1 {
		t.Errorf("final list %+v, want s3 (1 click), s2, s1 (1 click)", got)
	}
}

func TestIfNoneMatchForms(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
	)
	srv := w.serve(api.Config{})
	other := w.serve(api.Config{ShareBase: "https://staging.craftkit.dev"})
	tag := get(t, srv, renderA, liveKey).header.Get("ETag")
	otherTag := get(t, other, renderA, liveKey).header.Get("ETag")
	if otherTag == tag {
		t.Fatalf("servers with different default share bases give the same ETag %s", tag)
	}
	stale := mutateVersion(t, tag)
	tests := []struct {
		name, header string
		status       int
	}{
		{"our tag", tag, 304},
		{"the weak form of our tag", "W/" + tag, 304},
		{"our tag in a list", `"abc", ` + tag + `, "def"`, 304},
		{"a stale tag of ours, then ours", stale + ", " + tag, 304},
		{"ours, then a stale one", tag + ", " + stale, 304},
		{"ours after malformed and stale weak tags, no spaces", `"x",garbage,W/` + stale + `,W/` + tag, 304},
		{"ours after a malformed one, with spaces", stale + " ,  garbage , W/" + tag + "  ", 304},
		{"only stale, foreign and malformed tags", stale + ", " + otherTag + `, "abc", W/"1.2"`, 200},
		{"our tag unquoted (malformed)", strings.Trim(tag, `"`), 200},
		{"star", "*", 304},
		{"a garbage tag", `"garbage"`, 200},
		{"an unquoted garbage value", `garbage`, 200},
		{"a tag of the same shape but another version", mutateVersion(t, tag), 200},
		{"the tag of a server with another default share base", otherTag, 200},
		{"an empty header", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, srv, renderA, liveKey, "If-None-Match: "+tt.header)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d", r.status, tt.status)
			}
			if tt.status == 304 && len(r.body) != 0 {
				t.Errorf("304 with body %q", r.body)
			}
			if got := r.header.Get("ETag"); got != tag {
				t.Errorf("ETag = %q, want %q", got, tag)
			}
		})
	}
	t.Run("star on an unknown render is still 404", func(t *testing.T) {
		get(t, srv, eventstest.UUID(1), liveKey, "If-None-Match: *").wantError(t, http.StatusNotFound, "not_found")
	})
}

// mutateVersion returns tag with its first digit changed.
func mutateVersion(t *testing.T, tag string) string {
	t.Helper()
	i := strings.IndexAny(tag, "0123456789")
	if i < 0 {
		t.Fatalf("ETag %s has no digit", tag)
	}
	d := byte('1')
	if tag[i] == '1' {
		d = '2'
	}
	return tag[:i] + string(d) + tag[i+1:]
}

// TestProjectionSeq checks that X-Projection-Seq is the render's own last
// applied sequence, not the stream's.
func TestProjectionSeq(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"))
	srv := w.serve(api.Config{})
	steps := []struct {
		name string
		ev   eventstest.Event
		// seqOf is the render whose X-Projection-Seq moves to this
		// event's sequence, "" for none.
		seqOf string
		want  readmodel.Outcome
	}{
		{"render.created", eventstest.RenderCreated(projectA, renderA), renderA, readmodel.Applied},
		{"share.created", eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"), renderA, readmodel.Applied},
		{"another render's event", eventstest.RenderCreated(projectA, renderB), renderB, readmodel.Applied},
		{"a project event", eventstest.ProjectUpdated(projectA, "https://a.example.com"), "", readmodel.Applied},
		{"a key event", eventstest.APIKeyCreated(projectA, "key_b", "ck_live_second_key_for_seq", "live"), "", readmodel.Applied},
		{"a view before its share", eventstest.ShareViewed(projectA, renderA, "s2").WithID("view-s2"), renderA, readmodel.Applied},
		{"a duplicate view", eventstest.ShareViewed(projectA, renderA, "s2").WithID("view-s2"), renderA, readmodel.Duplicate},
		{"an event of another project for the render", eventstest.ShareViewed(projectB, renderA, "s1"), renderA, readmodel.Mismatch},
	}
	want := map[string]uint64{}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			if out := w.apply(st.ev); out[0] != st.want {
				t.Fatalf("outcome %v, want %v", out[0], st.want)
			}
			if st.seqOf != "" {
				want[st.seqOf] = w.seq
			}
			for render, seq := range want {
				for _, inm := range []string{"", "*"} {
					r := get(t, srv, render, liveKey, "If-None-Match: "+inm)
					if got := r.header.Get("X-Projection-Seq"); got != strconv.FormatUint(seq, 10) {
						t.Errorf("render %s (status %d): X-Projection-Seq = %q, want %d", render[:8], r.status, got, seq)
					}
				}
			}
		}) {
			return
		}
	}
}

// TestMinSeq checks ?minSeq: the wait for the projector's announcement,
// the bounded wait, and malformed values.
func TestMinSeq(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
	)
	auth := "Authorization: Bearer " + liveKey
	path := func(n uint64) string { return sharesPath(renderA) + "?minSeq=" + strconv.FormatUint(n, 10) }

	t.Run("waits for the position, then answers with the new data", func(t *testing.T) {
		positions := api.NewPositions()
		positions.Set(w.seq)
		listed := make(chan uint64, 4)
		srv := serveStore(t, &notifyingStore{Store: w.apiStore(), listed: listed}, positions, api.Config{MinSeqWait: 10 * time.Second})
		type result struct {
			r   reply
			err error
			d   time.Duration
		}
		done := make(chan result, 1)
		want := w.seq + 1
		go func() {
			start := time.Now()
			r, err := fetch(srv, http.MethodGet, path(want), nil, auth)
			done <- result{r, err, time.Since(start)}
		}()
		if got := <-listed; got != w.seq {
			t.Fatalf("first read at seq %d, want %d", got, w.seq)
		}
		// The request has read the render below minSeq and now waits for
		// the position: apply the event, then announce it.
		w.apply(eventstest.ShareViewed(projectA, renderA, "s1"))
		positions.Set(w.seq)
		res := <-done
		if res.err != nil {
			t.Fatal(res.err)
		}
		if got := <-listed; got != want {
			t.Errorf("second read at seq %d, want %d", got, want)
		}
		if got := res.r.header.Get("X-Projection-Seq"); got != strconv.FormatUint(want, 10) {
			t.Errorf("X-Projection-Seq = %s, want %d", got, want)
		}
		if s := res.r.shares(t); len(s) != 1 || s[0].ClickCount != 1 {
			t.Errorf("shares %+v, want s1 with the new view counted", s)
		}
		if res.d > 5*time.Second {
			t.Errorf("answered after %v, want soon after Set (MinSeqWait is 10s)", res.d)
		}
	})

	t.Run("without the position it answers after MinSeqWait with the lower seq", func(t *testing.T) {
		const wait = 200 * time.Millisecond
		srv := w.serveWith(api.NewPositions(), api.Config{MinSeqWait: wait})
		start := time.Now()
		r := request(t, srv, http.MethodGet, path(w.seq+1), nil, auth)
		d := time.Since(start)
		if got := r.header.Get("X-Projection-Seq"); got != strconv.FormatUint(w.seq, 10) {
			t.Errorf("X-Projection-Seq = %s, want %d", got, w.seq)
		}
		r.shares(t)
		if d < wait || d > wait+time.Second {
			t.Errorf("answered after %v, want after about %v", d, wait)
		}
	})

	noWait := []struct {
		name   string
		pos    uint64 // the position the projector announced
		minSeq uint64
	}{
		{"minSeq at the render's seq answers at once", 0, w.seq},
		{"minSeq below the render's seq answers at once", 0, 1},
		{"minSeq reached by the projector on other renders answers at once", w.seq + 5, w.seq + 3},
	}
	for _, tt := range noWait {
		t.Run(tt.name, func(t *testing.T) {
			positions := api.NewPositions()
			positions.Set(tt.pos)
			srv := w.serveWith(positions, api.Config{MinSeqWait: 5 * time.Second})
			start := time.Now()
			r := request(t, srv, http.MethodGet, path(tt.minSeq), nil, auth)
			if d := time.Since(start); d > time.Second {
				t.Errorf("answered after %v, want at once (MinSeqWait is 5s)", d)
			}
			if got := r.header.Get("X-Projection-Seq"); got != strconv.FormatUint(w.seq, 10) {
				t.Errorf("X-Projection-Seq = %s, want %d", got, w.seq)
			}
			r.shares(t)
		})
	}

	srv := w.serveWith(api.NewPositions(), api.Config{MinSeqWait: 5 * time.Second})
	for _, q := range []string{"abc", "-1", "1.5", "0x10", "1e3", "18446744073709551616", "%201"} {
		t.Run("malformed minSeq "+q, func(t *testing.T) {
			request(t, srv, http.MethodGet, sharesPath(renderA)+"?minSeq="+q, nil, auth).wantError(t, http.StatusBadRequest, "bad_request")
		})
	}
	t.Run("an empty minSeq is no minSeq", func(t *testing.T) {
		request(t, srv, http.MethodGet, sharesPath(renderA)+"?minSeq=", nil, auth).shares(t)
	})
}

// notifyingStore is the real store, reporting the sequence of each list
// it read so a test knows a request is past its first read.
type notifyingStore struct {
	*readmodel.Store
	listed chan<- uint64
}

func (s *notifyingStore) List(ctx context.Context, projectID, renderID string, have *readmodel.Versions) (*readmodel.List, error) {
	l, err := s.Store.List(ctx, projectID, renderID, have)
	if err == nil {
		s.listed <- l.Seq
	}
	return l, err
}
