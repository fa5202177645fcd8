package readmodel

import "strings"

// This file is the only place that spells a Redis key. See doc.go for what
// each key holds.

const prefix = "sharesd:"

// ctlKey is the control hash: the active generation, the generation being
// built, a pending handover and one resume position per generation.
func ctlKey() string { return prefix + "{meta}:ctl" }

// appliedChannel is the pub/sub channel the projector announces its
// position on, so readers waiting for ?minSeq need not poll.
func appliedChannel() string { return prefix + "applied" }

// leasesChannel is the pub/sub channel a projector tells the others on that
// it gave up partition leases or joined (see Store.FollowLeases).
func leasesChannel() string { return prefix + "leases" }

// fenceKey is a counter the projector bumps on one master of a Redis
// Cluster before it WAITs for a replica (see Store.replicated); n is chosen
// so that the key hashes to a slot of that master.
func fenceKey(n string) string { return prefix + "{fence:" + n + "}" }

// genPattern matches every key of generation gen (for SCAN MATCH).
func genPattern(gen string) string { return prefix + gen + ":*" }

// Fields of the control hash.
const (
	fieldActive   = "active"
	fieldBuilding = "building"
	fieldHandover = "handover"
)

func posField(gen string) string { return "pos:" + gen }

// streamField records which stream (its creation time) gen was built from.
func streamField(gen string) string { return "stream:" + gen }

// renderKeys are the keys of one render in generation gen, in the order the
// render scripts take them. Every one carries the hash tag {renderID}, so a
// single Lua script can update them atomically, on Redis Cluster too.
// kShares and kOldSeen belong to the earlier layout (see doc.go): the scripts
// still read or drop them in a render written before it.
type renderKeys [8]string

const (
	kRender  = iota // hash: project, seq, ver, listed, deleted, lay
	kShares         // earlier layout: sorted set of shareIds by createdAt
	kRecs           // hash: shareId -> share record with its view count
	kClicks         // hash: shareId -> views counted apart from its record
	kRevoked        // hash: shareId -> encoded revocation
	kSeen           // hash: the render's dedupe table (see applyRender)
	kPending        // hash: what each project sent before the render was registered
	kOldSeen        // earlier layout: sorted set of event-id digests by stream time
)

func renderKeysOf(gen, renderID string) renderKeys {
	base := prefix + gen + ":{" + renderID + "}:"
	return renderKeys{base + "render", base + "shares", base + "recs", base + "clicks", base + "revoked",
		base + "dedupe", base + "pending", base + "seen"}
}

func (k renderKeys) slice() []string { return k[:] }

// projectKeys: the project's hash (see projectKey) and its seen set.
func projectKeys(gen, projectID string) []string {
	return []string{projectKey(gen, projectID), projectBase(gen, projectID) + "seen"}
}

// projectKey is a project's hash: base, seq, ver.
func projectKey(gen, projectID string) string { return projectBase(gen, projectID) + "project" }

func projectBase(gen, projectID string) string { return prefix + gen + ":{p:" + projectID + "}:" }

// keyKeys: the by-hash index of every API key and one key's record. All API
// keys share the hash tag {keys} so one script updates index and record.
func keyKeys(gen, keyID string) []string {
	base := prefix + gen + ":{keys}:"
	return []string{base + "byhash", base + "key:" + keyID, base + "byreg"}
}

func byHashKey(gen string) string { return prefix + gen + ":{keys}:byhash" }

// scratchGen is the generation name a single-render rebuild writes into
// before it swaps the keys into gen.
func scratchGen(gen string) string { return gen + "-rebuild" }

// validGen reports whether s can name a generation (it is spelled into keys).
func validGen(s string) bool {
	return s != "" && len(s) <= 32 && !strings.ContainsAny(s, ":{}*?[] ")
}
