package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// The environments of API keys. A key names its environment in its prefix
// (see KeyPrefix), apikey.created carries it, and a server accepts only
// the keys of its own.
const (
	EnvLive = "live"
	EnvTest = "test"
)

// keyPre begins every API key; the environment and "_" follow.
const keyPre = "ck_"

// KeyPrefix is how every API key of environment env begins: "ck_live_" or
// "ck_test_". A key is its prefix followed by a secret of at least one
// character.
func KeyPrefix(env string) string { return keyPre + env + "_" }

// KeyEnv returns the environment a plaintext API key names in its prefix,
// and whether key has the form of a key at all: "ck_<env>_<secret>" with
// env EnvLive or EnvTest and a secret that is not empty. It does not
// allocate: the API calls it on every request.
func KeyEnv(key string) (env string, ok bool) {
	rest, ok := strings.CutPrefix(key, keyPre)
	if !ok {
		return "", false
	}
	env, secret, ok := strings.Cut(rest, "_")
	if !ok || secret == "" || (env != EnvLive && env != EnvTest) {
		return "", false
	}
	return env, true
}

// KeyHash is what identifies an API key everywhere but in its holder's
// hands: the lowercase hex SHA-256 of the whole plaintext key, prefix
// included. apikey.created carries it; the API looks keys up by it. Like
// the key, it is never logged or put in an error.
func KeyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
