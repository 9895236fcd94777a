package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/emersion/go-smtp"

	"mailferry/core/relay"
	"mailferry/core/store"
)

// A Relay delivers mail for a local account into its INBOX before it
// answers 250.
func Example() {
	dir, _ := os.MkdirTemp("", "relay-example")
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "mail.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.CreateDomain(ctx, "example.org")
	acct, _ := st.CreateAccount(ctx, "ann@example.org", "Secret-1", nil)

	r, err := relay.New(relay.Options{Store: st, Hostname: "mx.example.org",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go r.ServeSMTP(ln)
	go r.Run(ctx)

	msg := "From: <joe@example.net>\r\nSubject: hello\r\n\r\nHi Ann!\r\n"
	c, err := smtp.Dial(ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	if err := c.SendMail("joe@example.net", []string{"ann@example.org"}, bytes.NewReader([]byte(msg))); err != nil {
		log.Fatal(err)
	}
	c.Quit()
	inbox, _ := st.Mailbox(ctx, acct.ID, "INBOX")
	msgs, _ := st.Messages(ctx, inbox.ID)
	raw, _ := st.Blob(ctx, msgs[0].BlobKey)
	fmt.Println(len(msgs), bytes.HasPrefix(raw, []byte("Received: from ")), bytes.HasSuffix(raw, []byte(msg)))
	// Output: 1 true true
}
