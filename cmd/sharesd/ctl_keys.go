package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector"
)

// keyBytes is how many random bytes a minted API key carries.
const keyBytes = 32

// runKeys mints (keys create) or revokes (keys revoke) API keys by
// publishing apikey.created or apikey.revoked.
func runKeys(ctx context.Context, env *environment, args []string) error {
	return runSubcommand(ctx, env, "keys", args, []command{
		{"create", "mint a key, print it once and publish apikey.created with its hash", runKeysCreate},
		{"revoke", "publish apikey.revoked for a key id", runKeysRevoke},
	})
}

// runKeysCreate mints a key with crypto/rand, publishes apikey.created with
// only its SHA-256, and prints the plaintext once, on stdout, after the
// stream has stored the event. The plaintext is never logged or stored.
func runKeysCreate(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("keys create", env, &cfg, "nats")
	project := fs.String("project", "", "UUID of the project the key belongs to (required)")
	keyID := fs.String("key-id", "", "id of the key (default: a random key_…); no '.', '*', '>' or spaces")
	fs.StringVar(&cfg.Env, "env", envOr(env.getenv, "CRAFTKIT_ENV", events.EnvLive), "environment of the key: live or test (env CRAFTKIT_ENV)")
	if _, err := parseCtl(fs, errs, &cfg, args, 0); err != nil {
		return err
	}
	if *project == "" {
		return errors.New("keys create: -project is required (the UUID of the key's project)")
	}
	if *keyID == "" {
		id, err := randomID("key_", 12)
		if err != nil {
			return err
		}
		*keyID = id
	}
	secret := make([]byte, keyBytes)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("crypto/rand: %w", err)
	}
	key := events.KeyPrefix(cfg.Env) + base62(secret)
	msg, err := keyEvent(events.TypeAPIKeyCreated, *project, map[string]any{
		"keyId": *keyID, "keyHash": events.KeyHash(key), "environment": cfg.Env,
	})
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	ack, err := publishKeyEvent(ctx, env, cfg, msg)
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	w := env.stdout
	fmt.Fprintf(w, "key id       %s\n", *keyID)
	fmt.Fprintf(w, "project      %s\n", *project)
	fmt.Fprintf(w, "environment  %s\n", cfg.Env)
	fmt.Fprintf(w, "api key      %s\n", key)
	fmt.Fprintf(w, "stream seq   %d\n", ack.Sequence)
	fmt.Fprintln(env.stderr, "This is the only time the key is shown: store it now. Only its SHA-256 was published.")
	return nil
}

// runKeysRevoke publishes apikey.revoked for one key id.
func runKeysRevoke(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("keys revoke", env, &cfg, "nats")
	project := fs.String("project", "", "UUID of the project the key belongs to (required)")
	pos, err := parseCtl(fs, errs, &cfg, args, 1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("keys revoke: want the key id: sharesd keys revoke -project <uuid> <keyId>")
	}
	if *project == "" {
		return errors.New("keys revoke: -project is required (the UUID of the key's project)")
	}
	msg, err := keyEvent(events.TypeAPIKeyRevoked, *project, map[string]any{"keyId": pos[0]})
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	ack, err := publishKeyEvent(ctx, env, cfg, msg)
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	fmt.Fprintf(env.stdout, "published the revocation of key %s of project %s (stream seq %d); the API refuses the key once the projector has applied it\n",
		pos[0], *project, ack.Sequence)
	fmt.Fprintln(env.stderr, "If the key is not a key of that project the projector dead-letters the revocation: check `sharesd deadletter list`.")
	return nil
}

// keyEvent builds the message of an apikey event, checked by the contract's
// decoder (see eventMsg); a rejection names the flag to fix.
func keyEvent(t events.Type, project string, payload map[string]any) (*nats.Msg, error) {
	id, err := freshEventID()
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(map[string]any{
		"id": id, "type": string(t), "occurredAt": time.Now().UTC().Format(time.RFC3339Nano),
		"projectId": project, "data": payload,
	})
	if err != nil {
		return nil, err
	}
	msg, err := eventMsg(data)
	var bad *events.DecodeError
	switch {
	case errors.As(err, &bad) && bad.Field == "projectId":
		return nil, fmt.Errorf("-project: %s", bad.Reason)
	case errors.As(err, &bad) && bad.Field == "data.keyId" && t == events.TypeAPIKeyCreated:
		return nil, fmt.Errorf("-key-id: %s", bad.Reason)
	case errors.As(err, &bad) && bad.Field == "data.keyId":
		return nil, fmt.Errorf("key id argument: %s", bad.Reason)
	case err != nil:
		return nil, err
	}
	return msg, nil
}

// publishKeyEvent publishes the message of one apikey event.
func publishKeyEvent(ctx context.Context, env *environment, cfg Config, msg *nats.Msg) (*jetstream.PubAck, error) {
	nc, js, err := connectNATS(cfg.NATSURL, newLogger(cfg, env.stderr), false)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := projector.EnsureStreams(ctx, js); err != nil {
		return nil, err
	}
	return js.PublishMsg(ctx, msg)
}
