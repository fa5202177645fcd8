package model_test

import (
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/model"
)

const (
	projA   = "11111111-1111-4111-8111-111111111111"
	projB   = "22222222-2222-4222-8222-222222222222"
	renderX = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	renderY = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
	base    = "https://www.craftkit.dev"
	hashK1  = "1111111111111111111111111111111111111111111111111111111111111111"
	hashK2  = "2222222222222222222222222222222222222222222222222222222222222222"
)

// t0 is the stream time of the first message of every test stream.
var t0 = time.Date(2026, 6, 5, 12, 0, 0, 0, time.UTC)

// stream builds a stream of messages with consecutive sequences, one
// second of stream time apart unless a test moves the clock.
type stream struct {
	t    testing.TB
	msgs []model.Msg
	now  time.Time
}

func newStream(t testing.TB) *stream { return &stream{t: t, now: t0} }

// advance moves the stream clock by d.
func (s *stream) advance(d time.Duration) *stream { s.now = s.now.Add(d); return s }

// add appends one event with the given id and type; entity is the render
// id for render and share events, the key id for apikey events and the
// project id otherwise.
func (s *stream) add(id string, typ events.Type, project, entity string, data map[string]any) *stream {
	s.t.Helper()
	e := eventstest.Event{ID: id, Type: typ, Project: project, Data: data}
	if typ.RenderScoped() {
		e.Render = entity
	} else {
		e.Key = entity // the subject of an apikey event ends with its key id
	}
	return s.event(e)
}

// event appends e as a publisher sends it.
func (s *stream) event(e eventstest.Event) *stream { return s.raw(e.Subject(), e.Body()) }

// raw appends a message as it is, well-formed or not.
func (s *stream) raw(subject string, data []byte) *stream {
	s.msgs = append(s.msgs, model.Msg{Seq: uint64(len(s.msgs) + 1), Time: s.now, Subject: subject, Data: data})
	s.now = s.now.Add(time.Second)
	return s
}

func (s *stream) created(id, project, render, share, createdAt string) *stream {
	return s.event(eventstest.ShareCreated(project, render, share, createdAt).WithID(id))
}

func (s *stream) viewed(id, project, render, share string) *stream {
	return s.event(eventstest.ShareViewed(project, render, share).WithID(id))
}

func (s *stream) revoked(id, project, render, share, at string, reason any) *stream {
	return s.event(eventstest.ShareRevoked(project, render, share, at, reason).WithID(id))
}

func (s *stream) fold(horizon time.Duration) *model.Model { return model.Fold(s.msgs, horizon) }

// list is m.List for a render that must answer 200.
func list(t testing.TB, m *model.Model, project, render string) []model.Share {
	t.Helper()
	l, ok := m.List(project, render, base)
	if !ok {
		t.Fatalf("List(%s, %s) = 404, want 200", project, render)
	}
	return l
}

func clicksOf(l []model.Share) map[string]int64 {
	m := map[string]int64{}
	for _, s := range l {
		m[s.ID] = s.ClickCount
	}
	return m
}

func ids(l []model.Share) []string {
	out := []string{}
	for _, s := range l {
		out = append(out, s.ID)
	}
	return out
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestDedupe(t *testing.T) {
	t.Parallel()
	const horizon = time.Hour
	tests := []struct {
		name  string
		gap   time.Duration // stream time between the two copies
		other bool          // the copy goes to another render
		want  int64
	}{
		{"same id within the horizon counts once", time.Minute, false, 1},
		{"same id exactly at the horizon counts once", horizon, false, 1},
		{"same id one millisecond beyond the horizon counts twice", horizon + time.Millisecond, false, 2},
		{"same id a day later counts twice", 24 * time.Hour, false, 2},
		{"same id in another render counts in each", time.Minute, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").
				created("c2", projA, renderY, "s1", "2026-06-05T10:00:00Z").
				viewed("v1", projA, renderX, "s1")
			// The second copy is stamped gap after the first.
			s.now = s.msgs[len(s.msgs)-1].Time.Add(tt.gap)
			second := renderX
			if tt.other {
				second = renderY
			}
			s.viewed("v1", projA, second, "s1")
			m := s.fold(horizon)
			if got := clicksOf(list(t, m, projA, renderX))["s1"]; got != tt.want {
				t.Fatalf("clickCount of %s = %d, want %d", renderX, got, tt.want)
			}
			if tt.other {
				if got := clicksOf(list(t, m, projA, renderY))["s1"]; got != 1 {
					t.Fatalf("clickCount of %s = %d, want 1", renderY, got)
				}
			}
		})
	}
}

func TestDedupeWindowMovesWithEachCopy(t *testing.T) {
	t.Parallel()
	// A duplicate does not refresh the remembered time: the horizon counts
	// from the copy that took effect.
	s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").viewed("v1", projA, renderX, "s1")
	s.advance(40*time.Minute).viewed("v1", projA, renderX, "s1") // duplicate
	s.advance(40*time.Minute).viewed("v1", projA, renderX, "s1") // 80 min after the first: counts
	if got := clicksOf(list(t, s.fold(time.Hour), projA, renderX))["s1"]; got != 2 {
		t.Fatalf("clickCount = %d, want 2", got)
	}
}

func TestDedupeAppliesToEveryRenderEvent(t *testing.T) {
	t.Parallel()
	// An event id seen before is dropped whatever its type: a "creation"
	// reusing a view's id does not create the share.
	s := newStream(t).add("r1", events.TypeRenderCreated, projA, renderX, nil).
		viewed("dup", projA, renderX, "s1").
		created("dup", projA, renderX, "s1", "2026-06-05T10:00:00Z")
	if got := list(t, s.fold(time.Hour), projA, renderX); len(got) != 0 {
		t.Fatalf("list = %v, want empty: the creation reused a seen id", ids(got))
	}
}

func TestFirstRevocationWins(t *testing.T) {
	t.Parallel()
	s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").
		revoked("r1", projA, renderX, "s1", "2026-06-05T11:00:00Z", "revoked_by_partner").
		revoked("r2", projA, renderX, "s1", "2026-06-05T12:00:00Z", nil)
	got := list(t, s.fold(time.Hour), projA, renderX)[0]
	if got, want := str(got.RevokedAt), "2026-06-05T11:00:00.000Z"; got != want {
		t.Errorf("revokedAt = %s, want %s", got, want)
	}
	if got, want := str(got.RevokedReason), "revoked_by_partner"; got != want {
		t.Errorf("revokedReason = %s, want %s", got, want)
	}
}

func TestRevocationBeforeCreationIsKept(t *testing.T) {
	t.Parallel()
	s := newStream(t).revoked("r1", projA, renderX, "s1", "2026-06-05T11:00:00Z", nil).
		created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z")
	got := list(t, s.fold(time.Hour), projA, renderX)
	if len(got) != 1 || str(got[0].RevokedAt) != "2026-06-05T11:00:00.000Z" || got[0].RevokedReason != nil {
		t.Fatalf("list = %+v, want s1 revoked at 11:00 with a null reason", got)
	}
}

func TestSecondCreationIgnored(t *testing.T) {
	t.Parallel()
	s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z")
	s.add("c2", events.TypeShareCreated, projA, renderX, map[string]any{
		"shareId": "s1", "channel": "email", "recipientEmail": "x@example.com", "message": "other",
		"expiresAt": "2027-01-01T00:00:00Z", "createdAt": "2026-06-06T10:00:00Z", "shareToken": "cks_other",
	})
	got := list(t, s.fold(time.Hour), projA, renderX)
	want := []model.Share{{ID: "s1", Channel: "link", CreatedAt: "2026-06-05T10:00:00.000Z", ShareToken: "cks_s1", ShareURL: base + "/share/cks_s1"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("list = %+v, want the first creation %+v", got, want)
	}
}

func TestViewsBeforeCreation(t *testing.T) {
	t.Parallel()
	s := newStream(t).viewed("v1", projA, renderX, "s1").viewed("v2", projA, renderX, "s1")
	m := s.fold(time.Hour)
	if _, ok := m.List(projA, renderX, base); ok {
		t.Fatal("a render with only views answers 200, want 404 until it is created")
	}
	s.viewed("v3", projA, renderX, "s2").created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z")
	got := clicksOf(list(t, s.fold(time.Hour), projA, renderX))
	if want := map[string]int64{"s1": 2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("clicks = %v, want %v (s2 is not created, so not listed)", got, want)
	}
}

func TestViewsOfRevokedSharesCount(t *testing.T) {
	t.Parallel()
	s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").
		revoked("r1", projA, renderX, "s1", "2026-06-05T11:00:00Z", nil).
		viewed("v1", projA, renderX, "s1")
	if got := clicksOf(list(t, s.fold(time.Hour), projA, renderX))["s1"]; got != 1 {
		t.Fatalf("clickCount = %d, want 1", got)
	}
}

func TestCrossProjectRejected(t *testing.T) {
	t.Parallel()
	s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").
		viewed("v1", projB, renderX, "s1").
		created("c2", projB, renderX, "s2", "2026-06-05T10:00:00Z").
		revoked("r1", projB, renderX, "s1", "2026-06-05T11:00:00Z", nil).
		add("d1", events.TypeRenderDeleted, projB, renderX, nil)
	m := s.fold(time.Hour)
	got := list(t, m, projA, renderX)
	if len(got) != 1 || got[0].ClickCount != 0 || got[0].RevokedAt != nil {
		t.Fatalf("list = %+v, want s1 untouched by project B's events", got)
	}
	if _, ok := m.List(projB, renderX, base); ok {
		t.Fatal("project B sees project A's render, want 404")
	}
	if got, want := m.Rejected[events.CodeProjectMismatch], 4; got != want {
		t.Fatalf("Rejected[project_mismatch] = %d, want %d", got, want)
	}
	if got, want := m.Renders[renderX].LastSeq, uint64(5); got != want {
		t.Fatalf("LastSeq = %d, want %d: a rejected event still moves the render's sequence", got, want)
	}
}

func TestCrossProjectRejectedIsNotRemembered(t *testing.T) {
	t.Parallel()
	// A rejected event's id is not remembered: the same id in the right
	// project still applies.
	s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").
		viewed("v1", projB, renderX, "s1").
		viewed("v1", projA, renderX, "s1")
	if got := clicksOf(list(t, s.fold(time.Hour), projA, renderX))["s1"]; got != 1 {
		t.Fatalf("clickCount = %d, want 1", got)
	}
}

func TestDeletionTombstone(t *testing.T) {
	t.Parallel()
	s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").
		viewed("v1", projA, renderX, "s1").
		add("d1", events.TypeRenderDeleted, projA, renderX, nil).
		add("r1", events.TypeRenderCreated, projA, renderX, nil).
		created("c2", projA, renderX, "s2", "2026-06-05T10:00:00Z").
		viewed("v2", projA, renderX, "s1")
	m := s.fold(time.Hour)
	if _, ok := m.List(projA, renderX, base); ok {
		t.Fatal("a deleted render answers 200, want 404 for good")
	}
	r := m.Renders[renderX]
	if !r.Deleted || r.Listed || r.Project != projA || r.LastSeq != 6 {
		t.Fatalf("render = %+v, want a tombstone of project A at seq 6", r)
	}
	// The tombstone keeps the render's project: another project's events
	// are still rejected, not applied to a fresh render.
	s.created("c3", projB, renderX, "s3", "2026-06-05T10:00:00Z")
	m = s.fold(time.Hour)
	if _, ok := m.List(projB, renderX, base); ok {
		t.Fatal("project B can take over a deleted render of project A")
	}
	if m.Rejected[events.CodeProjectMismatch] != 1 {
		t.Fatalf("Rejected = %v, want one project_mismatch", m.Rejected)
	}
}

func TestRenderCreatedListsEmpty(t *testing.T) {
	t.Parallel()
	m := newStream(t).add("r1", events.TypeRenderCreated, projA, renderX, nil).fold(time.Hour)
	if got := list(t, m, projA, renderX); got == nil || len(got) != 0 {
		t.Fatalf("list = %#v, want an empty, non-nil list (JSON [])", got)
	}
	if _, ok := m.List(projA, renderY, base); ok {
		t.Fatal("an unknown render answers 200, want 404")
	}
}

func TestOrderingTies(t *testing.T) {
	t.Parallel()
	// Newest createdAt first; the same millisecond (whatever lies below it)
	// is a tie, broken by share id descending, byte-wise.
	s := newStream(t).
		created("c1", projA, renderX, "a", "2026-06-05T10:00:00.5001Z").
		created("c2", projA, renderX, "B", "2026-06-05T10:00:00.500999Z").
		created("c3", projA, renderX, "c", "2026-06-05T10:00:00.500Z").
		created("c4", projA, renderX, "old", "2026-06-05T09:00:00Z").
		created("c5", projA, renderX, "new", "2026-06-05T11:00:00Z").
		created("c6", projA, renderX, "zone", "2026-06-05T12:30:00+02:00") // 10:30Z
	got := ids(list(t, s.fold(time.Hour), projA, renderX))
	want := []string{"new", "zone", "c", "a", "B", "old"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
}

func TestTimeTruncation(t *testing.T) {
	t.Parallel()
	s := newStream(t)
	s.add("c1", events.TypeShareCreated, projA, renderX, map[string]any{
		"shareId": "s1", "channel": "email", "recipientEmail": "ada@example.com", "message": "hi",
		"expiresAt": "2026-12-31T23:59:59.9999999-01:00", "createdAt": "2026-06-05T12:05:00.123456789+02:00", "shareToken": "cks_1",
	})
	s.revoked("r1", projA, renderX, "s1", "2026-06-05T10:05:00.000999Z", "why")
	got := list(t, s.fold(time.Hour), projA, renderX)[0]
	for _, c := range []struct{ name, got, want string }{
		{"createdAt", got.CreatedAt, "2026-06-05T10:05:00.123Z"},
		{"expiresAt", str(got.ExpiresAt), "2027-01-01T00:59:59.999Z"},
		{"revokedAt", str(got.RevokedAt), "2026-06-05T10:05:00.000Z"},
		{"recipientEmail", str(got.RecipientEmail), "ada@example.com"},
		{"message", str(got.Message), "hi"},
		{"channel", got.Channel, "email"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
}

func TestShareURLBase(t *testing.T) {
	t.Parallel()
	s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").
		created("c2", projB, renderY, "s2", "2026-06-05T10:00:00Z")
	url := func(m *model.Model, project, render string) string {
		t.Helper()
		return list(t, m, project, render)[0].ShareURL
	}
	if got, want := url(s.fold(time.Hour), projA, renderX), base+"/share/cks_s1"; got != want {
		t.Fatalf("shareUrl = %s, want the default %s", got, want)
	}
	s.add("p1", events.TypeProjectUpdated, projA, projA, map[string]any{"shareBase": "https://share.example.com/"})
	m := s.fold(time.Hour)
	if got, want := url(m, projA, renderX), "https://share.example.com/share/cks_s1"; got != want {
		t.Fatalf("shareUrl = %s, want %s (trailing slash dropped)", got, want)
	}
	if got, want := url(m, projB, renderY), base+"/share/cks_s2"; got != want {
		t.Fatalf("other project's shareUrl = %s, want the default %s", got, want)
	}
	s.add("p2", events.TypeProjectUpdated, projA, projA, map[string]any{"shareBase": nil})
	if got, want := url(s.fold(time.Hour), projA, renderX), base+"/share/cks_s1"; got != want {
		t.Fatalf("shareUrl after a null shareBase = %s, want the default %s", got, want)
	}
	// A republished project.updated within the horizon is a duplicate.
	s.add("p1", events.TypeProjectUpdated, projA, projA, map[string]any{"shareBase": "https://share.example.com"})
	if got, want := url(s.fold(time.Hour), projA, renderX), base+"/share/cks_s1"; got != want {
		t.Fatalf("shareUrl after a duplicate project.updated = %s, want %s", got, want)
	}
}

func TestBadEventsNotApplied(t *testing.T) {
	t.Parallel()
	good := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").msgs[0]
	s := newStream(t).add("r1", events.TypeRenderCreated, projA, renderX, nil)
	subj := events.Subject(events.TypeShareCreated, renderX)
	s.raw(subj, []byte("not json"))
	s.raw(events.SubjectPre+"share.exploded."+renderX, []byte(`{"id":"x","type":"share.exploded","occurredAt":"2026-06-05T10:00:00Z","projectId":"`+projA+`","renderId":"`+renderX+`","data":{}}`))
	s.raw(subj, []byte(`{"id":"x","type":"share.created","occurredAt":"2026-06-05T10:00:00Z","projectId":"`+projA+`","renderId":"`+renderX+`","data":{"shareId":"s9"}}`))
	s.raw(subj, []byte(`{"id":"x","type":"share.created","occurredAt":"yesterday","projectId":"`+projA+`","renderId":"`+renderX+`","data":{}}`))
	s.raw(subj, []byte(`{"id":"x","type":"share.created","occurredAt":"2026-06-05T10:00:00Z","projectId":"not-a-uuid","renderId":"`+renderX+`","data":{}}`))
	s.raw(subj, append(append([]byte(nil), good.Data...), make([]byte, events.MaxSize)...))
	s.raw(events.Subject(events.TypeShareCreated, renderY), good.Data) // wrong subject
	m := s.fold(time.Hour)
	if got := list(t, m, projA, renderX); len(got) != 0 {
		t.Fatalf("list = %v, want empty: no bad event applies", ids(got))
	}
	// Each is rejected with the reason code its dead letter carries.
	want := map[string]int{events.CodeMalformed: 2, events.CodeUnknownType: 1, events.CodeInvalidField: 3, events.CodeBadSubject: 1}
	if !maps.Equal(m.Rejected, want) {
		t.Fatalf("Rejected = %v, want %v", m.Rejected, want)
	}
	if _, ok := m.Renders[renderY]; ok {
		t.Fatal("an event on the wrong subject registered a render")
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	key := func(id, project, hash, env string) map[string]any {
		return map[string]any{"keyId": id, "keyHash": hash, "environment": env}
	}
	s := newStream(t).
		add("k1", events.TypeAPIKeyCreated, projA, "key1", key("key1", projA, hashK1, "live")).
		add("k2", events.TypeAPIKeyCreated, projA, "key1", key("key1", projA, hashK2, "test")). // second creation: ignored
		add("k3", events.TypeAPIKeyRevoked, projA, "key2", map[string]any{"keyId": "key2"}).    // revoked before created
		add("k4", events.TypeAPIKeyCreated, projA, "key2", key("key2", projA, hashK2, "test")).
		add("k5", events.TypeAPIKeyRevoked, projB, "key1", map[string]any{"keyId": "key1"}) // other project: rejected
	m := s.fold(time.Hour)
	want := map[string]*model.Key{
		"key1": {Project: projA, Hash: hashK1, Env: "live", Created: true},
		"key2": {Project: projA, Hash: hashK2, Env: "test", Revoked: true, Created: true},
	}
	if !reflect.DeepEqual(m.Keys, want) {
		t.Fatalf("keys = %+v %+v, want %+v %+v", m.Keys["key1"], m.Keys["key2"], want["key1"], want["key2"])
	}
	if m.Rejected[events.CodeProjectMismatch] != 1 {
		t.Fatalf("Rejected = %v, want one project_mismatch", m.Rejected)
	}
}

func TestListIsForItsProjectOnly(t *testing.T) {
	t.Parallel()
	m := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").fold(time.Hour)
	if _, ok := m.List(projB, renderX, base); ok {
		t.Fatal("List with another project answers 200, want 404")
	}
}

func TestFoldIsApplyInOrder(t *testing.T) {
	t.Parallel()
	s := newStream(t).created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").viewed("v1", projA, renderX, "s1")
	m := model.New(time.Hour)
	for _, msg := range s.msgs {
		m.Apply(msg)
	}
	if !reflect.DeepEqual(list(t, m, projA, renderX), list(t, s.fold(time.Hour), projA, renderX)) {
		t.Fatal("Apply one by one differs from Fold")
	}
}

func TestRegistrationDecidesTheProject(t *testing.T) {
	t.Parallel()
	s := newStream(t).viewed("v1", projB, renderX, "s1").
		add("d1", events.TypeRenderDeleted, projB, renderX, nil).
		viewed("v2", projA, renderX, "s1").
		revoked("r1", projA, renderX, "s1", "2026-06-05T11:00:00Z", nil).
		created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z")
	m := s.fold(time.Hour)
	got := list(t, m, projA, renderX)
	if len(got) != 1 || got[0].ClickCount != 1 || got[0].RevokedAt == nil {
		t.Fatalf("list = %+v, want s1 with project A's early view and revocation", got)
	}
	if _, ok := m.List(projB, renderX, base); ok {
		t.Fatal("project B reads the render, want 404")
	}
	if got, want := m.Rejected[events.CodeProjectMismatch], 2; got != want {
		t.Fatalf("Rejected[project_mismatch] = %d, want %d: project B's events, at registration", got, want)
	}
}

func TestUnregisteredEventsAreNotRejectedYet(t *testing.T) {
	t.Parallel()
	m := newStream(t).viewed("v1", projB, renderX, "s1").fold(time.Hour)
	if len(m.Rejected) != 0 {
		t.Fatalf("Rejected = %v, want nothing before the render is registered", m.Rejected)
	}
}

func TestOwnDeleteBeforeRegistration(t *testing.T) {
	t.Parallel()
	m := newStream(t).add("d1", events.TypeRenderDeleted, projA, renderX, nil).
		created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").fold(time.Hour)
	if _, ok := m.List(projA, renderX, base); ok {
		t.Fatal("a render its owner deleted before registering answers 200, want 404")
	}
	if r := m.Renders[renderX]; !r.Deleted || r.Project != projA {
		t.Fatalf("render = %+v, want a tombstone of project A", r)
	}
}

func TestPendingDedupeIsPerProject(t *testing.T) {
	t.Parallel()
	m := newStream(t).viewed("same", projB, renderX, "s1").viewed("same", projA, renderX, "s1").
		created("c1", projA, renderX, "s1", "2026-06-05T10:00:00Z").
		viewed("same", projA, renderX, "s1").fold(time.Hour)
	if got := clicksOf(list(t, m, projA, renderX))["s1"]; got != 1 {
		t.Fatalf("clickCount = %d, want 1", got)
	}
}

func TestKeyHashBelongsToItsFirstKeyID(t *testing.T) {
	t.Parallel()
	key := func(id, hash string) map[string]any {
		return map[string]any{"keyId": id, "keyHash": hash, "environment": "live"}
	}
	m := newStream(t).
		add("k1", events.TypeAPIKeyCreated, projA, "key1", key("key1", hashK1)).
		add("k2", events.TypeAPIKeyCreated, projB, "keyB", key("keyB", hashK1)). // another project binds A's key: refused
		add("k3", events.TypeAPIKeyRevoked, projB, "keyB", map[string]any{"keyId": "keyB"}).
		add("k4", events.TypeAPIKeyRevoked, projA, "key1", map[string]any{"keyId": "key1"}).
		add("k5", events.TypeAPIKeyCreated, projA, "key2", key("key2", hashK1)). // revoked key brought back: refused
		add("k6", events.TypeAPIKeyCreated, projA, "key2", key("key2", hashK2)). // key2's first creation decided it
		fold(time.Hour)
	if k := m.Keys["key1"]; k == nil || k.Hash != hashK1 || !k.Revoked {
		t.Fatalf("key1 = %+v, want the hash's owner, revoked", k)
	}
	if k := m.Keys["keyB"]; k == nil || k.Hash != "" || !k.Revoked {
		t.Fatalf("keyB = %+v, want a revoked key id without a hash", k)
	}
	if k := m.Keys["key2"]; k == nil || k.Hash != "" || !k.Created {
		t.Fatalf("key2 = %+v, want a created key id without a hash (its creation refused, the next one ignored)", k)
	}
	if got, want := m.Rejected[events.CodeKeyHashTaken], 2; got != want {
		t.Fatalf("Rejected[key_hash_taken] = %d, want %d", got, want)
	}
}
