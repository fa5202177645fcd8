package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector"
)

// runDeadletter lists (deadletter list) or replays (deadletter replay) the
// events the projector copied to CRAFTKIT_DEADLETTER.
func runDeadletter(ctx context.Context, env *environment, args []string) error {
	return runSubcommand(ctx, env, "deadletter", args, []command{
		{"list", "list dead letters with their reasons (bodies masked, with -show-body)", runDeadletterList},
		{"replay", "publish fixed (-file) or now-valid events again and delete their dead letters", runDeadletterReplay},
	})
}

// deadLetter is one message of CRAFTKIT_DEADLETTER as the CLI shows it.
type deadLetter struct {
	Seq             uint64    `json:"seq"`
	Time            time.Time `json:"time"`
	OriginalSubject string    `json:"originalSubject"`
	OriginalSeq     uint64    `json:"originalSeq"`
	OriginalMsgID   string    `json:"originalMsgId,omitempty"`
	EventID         string    `json:"eventId,omitempty"`
	Reason          string    `json:"reason"`
	Field           string    `json:"field"`
	Truncated       string    `json:"truncated,omitempty"` // what the copy lacks: "body N", "headers N"
	// NotStored marks a bad event the dead-letter stream refused even as a
	// headers-only copy: the projector recorded it in its bucket instead
	// (Seq is 0, Time is the event's); its body is still in CRAFTKIT.
	NotStored bool   `json:"notStored,omitempty"`
	Refusal   string `json:"refusal,omitempty"` // why the stream refused the (full) copy
	Body      string `json:"body,omitempty"`    // masked; only with -show-body

	data []byte
}

func newDeadLetter(m *jetstream.RawStreamMsg) deadLetter {
	subject := m.Header.Get(projector.HeaderSubject)
	if subject == "" {
		subject = strings.TrimPrefix(m.Subject, events.DeadLetterPre)
	}
	seq, _ := strconv.ParseUint(m.Header.Get(projector.HeaderSeq), 10, 64)
	d := deadLetter{
		Seq: m.Sequence, Time: m.Time.UTC(), OriginalSubject: subject, OriginalSeq: seq,
		OriginalMsgID: projector.UnescapeHeader(m.Header.Get(projector.HeaderMsgID)),
		Reason:        m.Header.Get(projector.HeaderReason), Field: m.Header.Get(projector.HeaderField),
		Truncated: m.Header.Get(projector.HeaderTruncated), Refusal: m.Header.Get(projector.HeaderRefused),
		EventID: eventID(m.Data), data: m.Data,
	}
	if d.EventID == "" {
		d.EventID = d.OriginalMsgID
	}
	return d
}

// nextDeadLetter returns the first dead letter at or after seq, or nil when
// there is none. Messages deleted by a replay are skipped by the server.
func nextDeadLetter(ctx context.Context, s jetstream.Stream, seq uint64) (*deadLetter, error) {
	m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(events.DeadLetterSubjects))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dead letter from seq %d: %w", seq, err)
	}
	d := newDeadLetter(m)
	return &d, nil
}

// secrets matches what a body must never show: the value of any keyHash
// member, any run of 64 hex digits (a SHA-256 wherever it was put) and
// anything shaped like a plaintext API key.
var secrets = []*regexp.Regexp{
	regexp.MustCompile(`("keyHash"\s*:\s*)"(?:[^"\\]|\\.)*"`),
	regexp.MustCompile(`(?i)\b[0-9a-f]{64}\b`),
	regexp.MustCompile(events.KeyPrefix(`(?:`+events.EnvLive+`|`+events.EnvTest+`)`) + `[A-Za-z0-9_-]+`),
}

// maskSecrets returns body with key hashes and keys replaced by "***".
func maskSecrets(body []byte) string {
	s := string(body)
	s = secrets[0].ReplaceAllString(s, `$1"***"`)
	for _, re := range secrets[1:] {
		s = re.ReplaceAllString(s, "***")
	}
	return s
}

// printable returns s as is when it is printable text, else quoted, so a
// body cannot send control sequences to a terminal.
func printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func runDeadletterList(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("deadletter list", env, &cfg, "nats")
	limit := fs.Int("limit", 100, "show at most this many dead letters, oldest first")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	showBody := fs.Bool("show-body", false, "print each event body too, with key hashes and keys masked")
	if err := parse(fs, errs, &cfg, args); err != nil {
		return err
	}
	if *limit < 1 {
		return fmt.Errorf("-limit: got %d, want at least 1", *limit)
	}
	nc, js, err := connectNATS(cfg.NATSURL, newLogger(cfg, env.stderr), false)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	s, err := streamOrHint(ctx, js, events.DeadLetterStream)
	if err != nil {
		return err
	}
	total := s.CachedInfo().State.Msgs
	var list []deadLetter
	for seq := uint64(1); len(list) < *limit; {
		d, err := nextDeadLetter(ctx, s, seq)
		if err != nil {
			return err
		}
		if d == nil {
			break
		}
		if *showBody {
			d.Body = maskSecrets(d.data)
		}
		list = append(list, *d)
		seq = d.Seq + 1
	}
	failed, err := notStored(ctx, js, *limit, *showBody)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		for _, d := range append(list, failed.list...) {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return nil
	}
	if err := printDeadLetters(env.stdout, list, total); err != nil {
		return err
	}
	return printNotStored(env.stdout, failed)
}

// failures are the bad events the projector recorded in its bucket because
// the dead-letter stream refused them.
type failures struct {
	list  []deadLetter
	total int
}

// notStored reads at most limit recorded failures, with their bodies from
// CRAFTKIT (masked) when showBody is set and the stream still holds them.
func notStored(ctx context.Context, js jetstream.JetStream, limit int, showBody bool) (failures, error) {
	fs, err := projector.Failures(ctx, js)
	if err != nil {
		return failures{}, err
	}
	out := failures{total: len(fs)}
	var origin jetstream.Stream
	if s, err := js.Stream(ctx, events.Stream); err == nil {
		origin = s
	}
	for _, f := range fs[:min(len(fs), limit)] {
		d := deadLetter{
			Time: f.Time, OriginalSubject: f.Subject, OriginalSeq: f.Seq, OriginalMsgID: projector.UnescapeHeader(f.MsgID),
			Reason: f.Reason, Field: f.Field, Truncated: "body " + strconv.Itoa(f.Size), NotStored: true, Refusal: f.Refusal,
		}
		d.EventID = d.OriginalMsgID
		if origin != nil && origin.CachedInfo().Created.UTC().Format(time.RFC3339Nano) == f.Stream {
			if m, err := origin.GetMsg(ctx, f.Seq); err == nil {
				if id := eventID(m.Data); id != "" {
					d.EventID = id
				}
				if showBody {
					d.Body = maskSecrets(m.Data)
				}
			}
		}
		out.list = append(out.list, d)
	}
	return out, nil
}

func printNotStored(out io.Writer, f failures) error {
	if f.total == 0 {
		return nil
	}
	fmt.Fprintf(out, "\nNOT STORED: %d bad events the dead-letter stream refused even without their body; the projector recorded them in bucket %s and passed over them (their bodies stay in %s):\n",
		f.total, projector.DeadLetterBucket, events.Stream)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tORIGINAL SUBJECT\tORIGINAL SEQ\tREASON\tREFUSED")
	for _, d := range f.list {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", d.Time.Format(time.RFC3339), printable(d.OriginalSubject), d.OriginalSeq, printable(d.Reason), printable(d.Refusal))
		if d.Body != "" {
			fmt.Fprintf(w, "\t\t\tbody: %s\t\n", printable(d.Body))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(f.list) < f.total {
		fmt.Fprintf(out, "showing %d of %d events not stored (raise -limit for more)\n", len(f.list), f.total)
	}
	return nil
}

func printDeadLetters(out io.Writer, list []deadLetter, total uint64) error {
	if len(list) == 0 {
		fmt.Fprintf(out, "no dead letters in %s\n", events.DeadLetterStream)
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tORIGINAL SUBJECT\tORIGINAL SEQ\tREASON")
	for _, d := range list {
		reason := d.Reason
		if d.Truncated != "" {
			reason += " [copy lacks " + d.Truncated + "]"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", d.Seq, d.Time.Format(time.RFC3339), printable(d.OriginalSubject), d.OriginalSeq, printable(reason))
		if d.Body != "" {
			// As many cells as a row, so the columns stay aligned; the
			// body sits under REASON.
			fmt.Fprintf(w, "\t\t\t\tbody: %s\n", printable(d.Body))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if uint64(len(list)) < total {
		fmt.Fprintf(out, "showing %d of %d dead letters (raise -limit for more)\n", len(list), total)
	}
	return nil
}
