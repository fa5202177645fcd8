package main

// The control CLI: publish, keys, status and deadletter. Each subcommand is
// in its own ctl_*.go file; this one holds what they share.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/big"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/craftkit/sharesd/events"
)

// parseCtl parses args, which may mix flags and up to maxArgs positional
// arguments in any order (`keys revoke key_1 -project …` as well as
// `keys revoke -project … key_1`), validates the settings like parse and
// returns the positional arguments.
func parseCtl(fs *flag.FlagSet, errs *envErrors, cfg *Config, args []string, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) > maxArgs {
		return nil, fmt.Errorf("%s: unexpected argument %q", fs.Name(), pos[maxArgs])
	}
	return pos, parse(fs, errs, cfg, nil)
}

// runSubcommand runs the sub-subcommand named by args[0] (`keys create`)
// among subs.
func runSubcommand(ctx context.Context, env *environment, name string, args []string, subs []command) error {
	names := make([]string, len(subs))
	for i, c := range subs {
		names[i] = c.name
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(env.stderr, "usage: sharesd %s %s [flags]\n", name, strings.Join(names, "|"))
		for _, c := range subs {
			fmt.Fprintf(env.stderr, "  %-8s %s\n", c.name, c.summary)
		}
		if len(args) == 0 {
			return fmt.Errorf("%s: want a subcommand: %s", name, strings.Join(names, " or "))
		}
		return nil
	}
	for _, c := range subs {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	return fmt.Errorf("%s: unknown subcommand %q, want %s", name, args[0], strings.Join(names, " or "))
}

// eventMsg checks one contract event given as a JSON object and returns the
// message that carries it: on its subject (events.Event.Subject, UUIDs in
// lowercase), with Nats-Msg-Id set to its id. Every rejection is a
// *events.DecodeError. The message is decoded once. It leaves sending to
// the caller, so `publish` can validate a whole file first and then publish
// asynchronously.
func eventMsg(data []byte) (*nats.Msg, error) {
	ev, err := events.DecodeBody(data)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(ev.Subject())
	msg.Data = bytes.Clone(data)
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	return msg, nil
}

// eventID returns the "id" of an event body, or "" when it has none.
func eventID(data []byte) string {
	var head struct{ ID any }
	if json.Unmarshal(data, &head) != nil {
		return ""
	}
	id, _ := head.ID.(string)
	return id
}

// randomID returns prefix followed by n random bytes in base62.
func randomID(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("crypto/rand: %w", err)
	}
	return prefix + base62(b), nil
}

// freshEventID is a new event id for events the CLI itself publishes.
func freshEventID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("crypto/rand: %w", err)
	}
	return "sharesd-ctl-" + hex.EncodeToString(b), nil
}

const base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// base62 encodes b in base62 with a fixed width for its length (43
// characters for 32 bytes), so every key of one kind has the same length.
func base62(b []byte) string {
	width := int(math.Ceil(float64(len(b)) * 8 / math.Log2(62)))
	out := make([]byte, width)
	n := new(big.Int).SetBytes(b)
	base, rem := big.NewInt(62), new(big.Int)
	for i := width - 1; i >= 0; i-- {
		n.DivMod(n, base, rem)
		out[i] = base62Digits[rem.Int64()]
	}
	return string(out)
}

// onTerminal reports whether w is a terminal, where progress is drawn as a
// bar instead of a line per second.
func onTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// streamOrHint returns the stream called name, explaining what to do when
// it does not exist.
func streamOrHint(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s does not exist: start the projector or run `sharesd seed`, which create it", name)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return s, nil
}
