package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
)

// StreamConfig is the CRAFTKIT stream as the projector creates it when it is
// missing: file storage, limits retention, no age limit.
func StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       events.Stream,
		Subjects:   []string{events.Subjects},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Duplicates: 2 * time.Minute,
	}
}

// DeadLetterConfig is the dead-letter stream.
func DeadLetterConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:      events.DeadLetterStream,
		Subjects:  []string{events.DeadLetterSubjects},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
	}
}

// DeadLetterBucket is the key-value bucket in which the projector keeps,
// per incarnation of the CRAFTKIT stream, how far it has dead-lettered bad
// events, and the bad events the dead-letter stream refused (see Failure).
const DeadLetterBucket = "SHARESD_DEADLETTER"

// DeadLetterBucketConfig is the DeadLetterBucket: file storage, one value
// per key.
func DeadLetterBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      DeadLetterBucket,
		Description: "sharesd: how far bad events were dead-lettered, and those the dead-letter stream refused",
		History:     1,
		Storage:     jetstream.FileStorage,
	}
}

// EnsureStreams creates the event and dead-letter streams and the
// dead-letter bucket when they are missing and uses them as they are when
// they exist.
func EnsureStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, cfg := range []jetstream.StreamConfig{StreamConfig(), DeadLetterConfig()} {
		_, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				err = nil // created by someone else meanwhile
			}
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	_, err := js.KeyValue(ctx, DeadLetterBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = js.CreateKeyValue(ctx, DeadLetterBucketConfig())
		if errors.Is(err, jetstream.ErrBucketExists) {
			err = nil
		}
	}
	if _, permanent := refusal(err); err != nil && !permanent {
		return fmt.Errorf("bucket %s: %w", DeadLetterBucket, err)
	}
	return nil // refused for good: the projector runs without it and says so
}

// HistoryRisks lists what in the stream's configuration deletes history,
// which a rebuild needs in full. Purge and delete being allowed are listed
// apart (manual) because they need an operator's hand.
func HistoryRisks(cfg jetstream.StreamConfig) (risks, manual []string) {
	switch cfg.Retention {
	case jetstream.WorkQueuePolicy:
		risks = append(risks, "retention is work-queue: acknowledged events are deleted")
	case jetstream.InterestPolicy:
		risks = append(risks, "retention is interest: events are deleted once every consumer has them")
	}
	if cfg.MaxAge > 0 {
		risks = append(risks, fmt.Sprintf("max age %s: older events are deleted", cfg.MaxAge))
	}
	if cfg.MaxMsgs > 0 {
		risks = append(risks, fmt.Sprintf("max messages %d: the oldest events are deleted beyond it", cfg.MaxMsgs))
	}
	if cfg.MaxBytes > 0 {
		risks = append(risks, fmt.Sprintf("max bytes %d: the oldest events are deleted beyond it", cfg.MaxBytes))
	}
	if cfg.MaxMsgsPerSubject > 0 {
		risks = append(risks, fmt.Sprintf("max messages per subject %d: older events of a render are deleted", cfg.MaxMsgsPerSubject))
	}
	if !cfg.DenyPurge {
		manual = append(manual, "purge is allowed (deny_purge is false): a purge deletes history")
	}
	if !cfg.DenyDelete {
		manual = append(manual, "message delete is allowed (deny_delete is false)")
	}
	return risks, manual
}

// CheckStartup logs a warning for each way the stream can lose history and
// an error when Redis may evict read-model keys. It returns an error only
// when it cannot read either.
func CheckStartup(ctx context.Context, logger *slog.Logger, js jetstream.JetStream, policy func(context.Context) (string, error)) error {
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", events.Stream, err)
	}
	risks, manual := HistoryRisks(s.CachedInfo().Config)
	for _, r := range risks {
		logger.WarnContext(ctx, "stream can lose history: a rebuild would be partial", "stream", events.Stream, "risk", r)
	}
	for _, r := range manual {
		logger.WarnContext(ctx, "stream history can be removed by hand", "stream", events.Stream, "risk", r)
	}
	p, err := policy(ctx)
	if err != nil {
		logger.WarnContext(ctx, "cannot read redis maxmemory-policy (CONFIG GET refused?)", "err", err)
		return nil
	}
	if !SafeEvictionPolicy(p) {
		logger.ErrorContext(ctx, "redis maxmemory-policy can evict read-model keys: answers may silently lose shares; set maxmemory-policy noeviction",
			"maxmemory_policy", p)
	}
	return nil
}

// SafeEvictionPolicy reports whether a Redis maxmemory-policy can never
// evict read-model keys. Only noeviction is: the dedupe sets carry a TTL (so
// quiet renders do not keep them forever), and a volatile-* policy could
// evict one early and let a republished event count twice.
func SafeEvictionPolicy(p string) bool { return p == "noeviction" }
