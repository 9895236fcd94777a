package relay_test

// Session 18's attacker's review of the mail paths in and out: what a
// stranger on the internet, or a user of one domain, could make the relay
// do that it must not.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"mailferry/core/relay"
)

// A recipient the old server refused while a stranger's message was
// forwarded is remembered for that sender's retry only. The refusal may be
// about the sender, not the recipient: Exim's default configuration
// verifies the sender at RCPT before it accepts its relay_from_hosts,
// Postfix applies smtpd_sender_restrictions at RCPT, and the callout (with
// the null sender) said yes. Remembered for every sender, it let a stranger
// sending once a minute from an address the old server refuses have
// everyone else's mail to that user refused for good (550 at RCPT: the
// senders' servers bounce it, nothing is retried).
func TestForwardRefusalNotSharedWithOtherSenders(t *testing.T) {
	for _, noCallout := range []bool{false, true} {
		t.Run(fmt.Sprintf("callout=%v", !noCallout), func(t *testing.T) {
			old := startOldSMTP(t, "")
			old.rcptErr = func(from, _ string) *smtp.SMTPError {
				if strings.HasSuffix(from, "@unverifiable.test") {
					return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Sender verify failed"}
				}
				return nil
			}
			e := newEnv(t, old.addr)
			rr := startRelay(t, e.st, relay.Options{NoRecipientCallout: noCallout})

			c, _ := open(t, rr.smtpAddr)
			expectCode(t, c.cmd("MAIL FROM:<x@unverifiable.test>"), "250")
			expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250") // the callout's null sender is fine
			expectCode(t, c.data(message("poison", "x")), "550 5.1.7")
			// That sender's retry is refused at RCPT.
			expectCode(t, c.cmd("MAIL FROM:<x@unverifiable.test>"), "250")
			expectCode(t, c.cmd("RCPT TO:<Bob@example.test>"), "550 5.1.7")
			c.cmd("QUIT")

			// Anyone else's mail to bob is taken.
			c2, _ := open(t, rr.smtpAddr)
			expectCode(t, c2.cmd("MAIL FROM:<friend@elsewhere.test>"), "250")
			expectCode(t, c2.cmd("RCPT TO:<bob@example.test>"), "250")
			expectCode(t, c2.data(message("legit", "x")), "250")
			c2.cmd("QUIT")
			if got := old.messages(); len(got) != 1 || got[0].From != "friend@elsewhere.test" {
				t.Fatalf("the old server got %+v", got)
			}
		})
	}
}
