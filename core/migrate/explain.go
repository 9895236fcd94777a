package migrate

import (
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// Kinds of a copy's failure that are the engine's, not the old server's
// (the old server's are oldserver.Explain's).
const (
	// ProblemDiskFull: Mailferry's own disk is full.
	ProblemDiskFull oldserver.ProblemKind = "disk-full"
	// ProblemNoPassword: no password (or master user) for the account is
	// in memory, so the copy waits for the user's next login.
	ProblemNoPassword oldserver.ProblemKind = "no-password"
	// ProblemCopying: another process copies the account now.
	ProblemCopying oldserver.ProblemKind = "copying-elsewhere"
	// ProblemMessage: one message was not copied; the rest goes on.
	ProblemMessage oldserver.ProblemKind = "message-not-copied"
)

// Explain says a copy's failure in an admin's words: the engine's own
// failures (a full disk, no password in memory, another process copying)
// here, the old server's by oldserver.Explain. It looks at the error's
// types only, never at its text. A nil err has Kind "".
func Explain(err error) oldserver.Problem {
	if err == nil {
		return oldserver.Problem{}
	}
	p := oldserver.Problem{Detail: err.Error()}
	switch {
	case errors.Is(err, ErrDiskFull) || store.IsDiskFull(err):
		p.Kind, p.Headline = ProblemDiskFull, "Mailferry's disk is full: the copy waits for room."
		p.Advice = "Free space on the disk of Mailferry's data directory; the copy goes on by itself, nothing is lost."
	case errors.Is(err, ErrNoCredentials):
		p.Kind, p.Headline = ProblemNoPassword, "Mailferry has no password for this user in memory (it never keeps one on disk)."
		p.Advice = "The copy goes on at the user's next login; or pre-migrate the user (Disable migration…) with their password or a master user."
	case errors.Is(err, store.ErrLeased):
		p.Kind, p.Headline = ProblemCopying, "Another Mailferry process is copying this user now."
		p.Advice = "Nothing to do: one process copies a user at a time, and this one waits its turn."
	default:
		return oldserver.Explain(err)
	}
	return p
}

// retryingError names the mailbox a failure happened in (the copy of it is
// retried); it wraps err, so Explain still sees its type.
func retryingError(mailbox string, err error) error {
	return fmt.Errorf("mailbox %q: %w (retrying)", mailbox, err)
}

// messageProblem is one message not copied (detail: the engine's words),
// recorded (a problem the old server has with it: tried again by later
// runs) or not (too large, gone: passed for good).
func messageProblem(mailbox string, uid uint32, detail string, recorded bool) oldserver.Problem {
	p := oldserver.Problem{Kind: ProblemMessage, Reached: true, Detail: detail}
	p.Headline = fmt.Sprintf("One message was not copied (folder %q, old UID %d); the rest of the mailbox was.", mailbox, uid)
	if recorded {
		p.Advice = "The old server could not serve it; Mailferry tries it again on every catch-up run (Try again copies now). If it keeps failing, open that message on the old server: it may be damaged."
	} else {
		p.Advice = "Mailferry passes it for good; the technical detail says why."
	}
	return p
}

// refusalWords says an old server's refusal of a message in its own words,
// its status and response code after them: “Message file is damaged” (NO
// SERVERBUG).
func refusalWords(e *imap.Error) string {
	why := "the old server refused it"
	if e.Text != "" {
		why += ": “" + e.Text + "”"
	}
	code := string(e.Type)
	if e.Code != "" {
		code += " " + string(e.Code)
	}
	return why + " (" + code + ")"
}
