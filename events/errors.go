package events

// A DecodeError explains why an event was rejected. Field is a JSON path
// such as "data.shareId" ("subject" for the subject, "$" for the whole
// message); Reason is written for an operator.
type DecodeError struct{ Field, Reason string }

func (e *DecodeError) Error() string { return "events: " + e.Field + ": " + e.Reason }

// Reason codes say in one word why an event was not applied. They are the
// contract's: the Sharesd-Reason-Code header of a dead letter and the reason
// label of sharesd_events_deadlettered_total. Decode's rejections have the
// first four (see DecodeError.Code); applying an event that decodes can
// reject it with the last two.
const (
	CodeMalformed    = "malformed"     // not a JSON object, too large, invalid text outside a string
	CodeUnknownType  = "unknown_type"  // type missing, not a string or not a known type
	CodeBadSubject   = "bad_subject"   // the subject is not the one the event travels on
	CodeInvalidField = "invalid_field" // any other field is missing or invalid
	// CodeProjectMismatch: the event's projectId is not the project of its
	// render or API key.
	CodeProjectMismatch = "project_mismatch"
	// CodeKeyHashTaken: an apikey.created whose keyHash another key id
	// registered first.
	CodeKeyHashTaken = "key_hash_taken"
)

// Code is the reason code of the rejection: CodeMalformed,
// CodeUnknownType, CodeBadSubject or CodeInvalidField, by the field at
// fault.
func (e *DecodeError) Code() string {
	switch e.Field {
	case "$":
		return CodeMalformed
	case "type":
		return CodeUnknownType
	case "subject":
		return CodeBadSubject
	}
	return CodeInvalidField
}
