// Package events is the wire contract of Craftkit's share events, and
// every rule of it that more than one package needs. It is pure Go (the
// standard library only, no NATS or Redis client), so every other package
// and the fuzzer can use it; they call these rules and never restate them.
//
//   - The envelope and payload of each event type (types.go), Decode, which
//     checks every field of a received message, and DecodeBody, which a
//     publisher uses before it has a subject (decode.go).
//   - Subjects: Subject and Event.Subject (craftkit.<type>.<entity>), the
//     per-render filters RenderSubjects, the stream names (events.go).
//   - Reason codes: why an event was not applied, as the dead-letter header
//     and metric say it (errors.go): DecodeError.Code for Decode's
//     rejections, CodeProjectMismatch and CodeKeyHashTaken for the
//     projector's.
//   - API keys: KeyPrefix and KeyEnv ("ck_<env>_<secret>"), KeyHash, the
//     lowercase hex SHA-256 that apikey.created carries and the API looks
//     keys up by (keys.go).
//   - ShareBase: the share-base rule of project.updated and SHARE_BASE_URL
//     alike (sharebase.go).
//
// # Adding an event type
//
// Four files, in this order:
//
//  1. events/types.go: the Type constant and its entry in Types, the payload
//     struct, its case in payload (the decoder: one call of a fields reader
//     per member), and, if its subject ends with something other than the
//     render id (render.* and share.* types, see RenderScoped) or the
//     project id, its case in Event.entity. Decode, DecodeBody,
//     Event.Subject, the subject check and the reason codes follow.
//  2. projector/readmodel/scripts.go: the branch of the Lua script that
//     applies it (applyRender's `if t == …` chain for a render or share
//     event).
//  3. projector/readmodel/store.go: the arguments Store.queue passes that
//     script, a case of its switch on the payload type.
//  4. projector/model/model.go: the same effect in the reference model's
//     fold (Model.Apply or applyRender), which `sharesd verify` and the
//     property tests compare Redis with.
//
// Then the tests: a valid message in decode_test.go's wire and a payload
// check in fuzz_test.go's checkPayload, a seed under
// testdata/fuzz/FuzzDecode, and the event builders of the packages whose
// tests publish it. The projector, the dead-lettering, `sharesd publish`,
// `sharesd keys` and the API need no change: they see the new type only
// through Decode and Event. The README's event table documents it.
package events
