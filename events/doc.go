// Package events is the wire contract of Craftkit's share events, and
// every rule of it that more than one package needs. It is pure Go (the
// standard library only, no NATS or Redis client), so every other package
// and the fuzzer can use it; they call these rules and never restate them.
//
//   - The envelope and payload of each event type (types.go), Decode, which
//     checks every field of a received message, and DecodeBody, which a
//     publisher uses before it has a subject (decode.go).
//   - Subjects: Subject and Event.Subject (craftkit.<type>.<entity>), the
//     filters RenderSubjects and ProjectSubjects, the stream names
//     (events.go).
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
// A type about a render, an API key or a project (render.*, share.*,
// apikey.*, project.*) takes four files, in this order:
//
//  1. events/types.go: the Type constant and its entry in Types, the payload
//     struct, its case in payload (the decoder: one fields reader per
//     member), and, for an apikey.* type, its case in Event.entity (a key
//     id ends its subject; render.* and share.* types end with the render
//     id, see RenderScoped, and project.* types with the project id).
//     Decode, DecodeBody, Event.Subject, the subject check and the reason
//     codes follow from these.
//  2. projector/readmodel/scripts.go: its branch in the Lua script of its
//     entity (applyRender's `if t == …` chains, the one for a render not
//     yet registered too; applyKey; applyProject).
//  3. projector/readmodel/store.go: the arguments Store.queue passes that
//     script, a case of its switch on the payload type.
//  4. projector/model/model.go: the same effect in the reference model
//     (Model.Apply, applyRender and hold for a render's events), which
//     `sharesd verify` and the property tests compare Redis with.
//
// Then the tests and the documentation: a valid message in decode_test.go's
// wire and a payload check in fuzz_test.go's checkPayload, a seed under
// testdata/fuzz/FuzzDecode, the event builders of the packages whose tests
// publish it, and the README's event table. The projector's consume loop
// and dead-lettering, `sharesd publish`, `keys`, `deadletter replay` and
// the API need no change: they see a type only through Decode and Event. A
// type about a new kind of entity needs its own keys in the read model too
// (projector/readmodel/keys.go and doc.go).
package events
