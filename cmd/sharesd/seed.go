package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
)

// The demo project that `dev` and `seed` publish. Its API key is public on
// purpose (it is printed in the README); only its hash enters the stream,
// with the environment its prefix names.
const (
	demoProject = "7d0c1a52-3c4e-4f5a-9b1e-2f6a8c9d0e11"
	demoRender  = "5b3e8f20-9a4d-4c6b-8e2f-1d7a6b5c4e32"
	demoKeyID   = "key_demo"
	demoKey     = "ck_live_sharesd_demo_key_do_not_use_in_production"
)

// demoEvents is the demo project: a render with three shares, one revoked,
// and views, plus the demo API key.
func demoEvents() []map[string]any {
	keyEnv, _ := events.KeyEnv(demoKey)
	at := func(s string) string { return "2026-06-05T" + s + "Z" }
	ev := func(id string, t events.Type, occurred string, data map[string]any) map[string]any {
		m := map[string]any{"id": "demo-" + id, "type": string(t), "occurredAt": at(occurred), "projectId": demoProject, "data": data}
		if t.RenderScoped() {
			m["renderId"] = demoRender
		}
		return m
	}
	share := func(id, channel string, email, msg any, created, token string) map[string]any {
		return map[string]any{"shareId": id, "channel": channel, "recipientEmail": email, "message": msg,
			"expiresAt": "2026-12-31T23:59:59Z", "createdAt": at(created), "shareToken": token}
	}
	view := func(n int, share string) map[string]any {
		return ev(fmt.Sprintf("view-%d", n), events.TypeShareViewed, "12:00:00", map[string]any{"shareId": share, "viewedAt": at("12:00:00")})
	}
	return []map[string]any{
		ev("key", events.TypeAPIKeyCreated, "10:00:00", map[string]any{"keyId": demoKeyID, "keyHash": events.KeyHash(demoKey), "environment": keyEnv}),
		ev("render", events.TypeRenderCreated, "10:00:00", map[string]any{}),
		ev("share-1", events.TypeShareCreated, "10:05:00", share("share-1", "link", nil, "Here is your signed agreement.", "10:05:00", "cks_demo_link_one")),
		ev("share-2", events.TypeShareCreated, "10:06:00", share("share-2", "email", "ada@example.com", nil, "10:06:00.123456", "cks_demo_email_two")),
		ev("share-3", events.TypeShareCreated, "10:07:00", share("share-3", "link", nil, nil, "10:07:00", "cks_demo_link_three")),
		ev("revoke-3", events.TypeShareRevoked, "11:00:00", map[string]any{"shareId": "share-3", "revokedAt": at("11:00:00"), "reason": "revoked_by_partner"}),
		view(1, "share-1"), view(2, "share-1"), view(3, "share-1"), view(4, "share-2"),
	}
}

// seedDemo publishes the demo project unless the stream already has it.
func seedDemo(ctx context.Context, js jetstream.JetStream) (bool, error) {
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return false, err
	}
	_, err = s.GetLastMsgForSubject(ctx, events.Subject(events.TypeRenderCreated, demoRender))
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return false, err
	}
	for _, m := range demoEvents() {
		if err := publishJSON(ctx, js, m); err != nil {
			return false, err
		}
	}
	return true, nil
}

// publishJSON publishes one contract event given as a JSON object, after
// checking it with events.Decode, with Nats-Msg-Id set to its id.
func publishJSON(ctx context.Context, js jetstream.JetStream, m map[string]any) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = publishRaw(ctx, js, data)
	return err
}

// publishRaw validates one event and publishes it on its subject.
func publishRaw(ctx context.Context, js jetstream.JetStream, data []byte) (*jetstream.PubAck, error) {
	msg, err := eventMsg(data)
	if err != nil {
		return nil, err
	}
	return js.PublishMsg(ctx, msg)
}

func demoCurl(addr string) string {
	return fmt.Sprintf("curl -s http://%s/v1/renders/%s/shares -H 'Authorization: Bearer %s'", addr, demoRender, demoKey)
}

func runSeed(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("seed", env, &cfg, "nats")
	// The projector's setting: seed runs first on a fresh deployment, so the
	// streams it creates must have the projector's replicas.
	fs.IntVar(&cfg.StreamReplicas, "stream-replicas", errs.int(env.getenv, "STREAM_REPLICAS", 1),
		"copies of the streams it creates when they are missing: 3 on a JetStream cluster (env STREAM_REPLICAS)")
	if err := parse(fs, errs, &cfg, args); err != nil {
		return err
	}
	logger := newLogger(cfg, env.stderr)
	nc, js, err := connectNATS(cfg.NATSURL, logger, false)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ensureStreams(ctx, js, cfg.StreamReplicas); err != nil {
		return err
	}
	added, err := seedDemo(ctx, js)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	printSeed(env.stdout, added)
	return nil
}

func printSeed(w io.Writer, added bool) {
	if added {
		fmt.Fprintln(w, "demo project published")
	} else {
		fmt.Fprintln(w, "demo project already in the stream; nothing published")
	}
	fmt.Fprintf(w, "demo render %s, demo key %s\n", demoRender, demoKey)
}
