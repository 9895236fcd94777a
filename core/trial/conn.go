package trial

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/migrate"
	"mailferry/core/oldserver"
)

// ErrFrontDown is returned when Mailferry's IMAP front end does not listen.
var ErrFrontDown = errors.New("Mailferry's IMAP front end is not listening (see the error shown at start)")

// Front is how a mail client reaches Mailferry's own IMAP front end.
type Front struct {
	// Addr is the address the IMAP front end listens on; "" when it does
	// not.
	Addr string
	// Cert is the DER certificate it presents (pinned with STARTTLS); nil
	// when it has none (plain IMAP).
	Cert []byte
}

// ClientTLS returns a client TLS config that trusts exactly f.Cert, or nil
// when Mailferry has no certificate.
func (f Front) ClientTLS() *tls.Config {
	if f.Cert == nil {
		return nil
	}
	want := f.Cert
	host, _, _ := net.SplitHostPort(f.Addr)
	return &tls.Config{
		ServerName: host,
		MinVersion: tls.VersionTLS12,
		// Standard verification would need the self-signed certificate in
		// a root pool and matching names; pinning the exact certificate is
		// stricter and is done in VerifyConnection.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return errors.New("Mailferry's IMAP presented a certificate other than its own")
			}
			return nil
		},
	}
}

// dial connects to Mailferry's IMAP front end like a mail client: STARTTLS
// with Mailferry's certificate pinned, then LOGIN. The connection closes
// when ctx ends or done is called.
func (f Front) dial(ctx context.Context, address, password string) (cl *imapclient.Client, done func(), err error) {
	addr := f.Addr
	if addr == "" {
		return nil, nil, ErrFrontDown
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to Mailferry's IMAP at %s: %w", addr, err)
	}
	// The greeting and STARTTLS are bounded by a deadline and by ctx.
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	stopSetup := context.AfterFunc(ctx, func() { conn.Close() })
	if tc := f.ClientTLS(); tc != nil {
		cl, err = imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: tc})
	} else {
		cl = imapclient.New(conn, nil)
		err = cl.WaitGreeting()
	}
	stopSetup()
	if err != nil {
		conn.Close()
		return nil, nil, ctxErr(ctx, fmt.Errorf("connecting to Mailferry's IMAP at %s: %w", addr, err))
	}
	conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	done = func() { stop(); cl.Close() }
	if err := cl.Login(address, password).Wait(); err != nil {
		done()
		return nil, nil, ctxErr(ctx, fmt.Errorf("logging in to Mailferry's IMAP as %s: %w", address, err))
	}
	return cl, done, nil
}

// loginOld connects and logs in to the old server's IMAP; the connection
// closes when ctx ends or done is called.
func loginOld(ctx context.Context, s oldserver.Settings, address, password string) (cl *imapclient.Client, done func(), err error) {
	cl, err = oldserver.DialIMAP(ctx, s, nil)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	done = func() { stop(); cl.Close() }
	if _, err := oldserver.Login(ctx, cl, s, address, password); err != nil {
		done()
		return nil, nil, err
	}
	return cl, done, nil
}

// oldFolders lists the old account's folders the engine copies, with their
// message counts, by migrate's folder mapping.
func oldFolders(ctx context.Context, s oldserver.Settings, address, password string) ([]migrate.Folder, error) {
	cl, done, err := loginOld(ctx, s, address, password)
	if err != nil {
		return nil, err
	}
	defer done()
	out, err := migrate.ListFolders(cl)
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("old server: %w", err))
	}
	_ = cl.Logout().Wait()
	return out, nil
}

// frontFolders lists the account's folders on Mailferry's IMAP with their
// message counts, by the same mapping (Mailferry's personal namespace has
// no prefix, so a name is the one the engine gave the folder).
func frontFolders(cl *imapclient.Client) (map[string]int64, error) {
	list, err := migrate.ListFolders(cl)
	if err != nil {
		return nil, fmt.Errorf("Mailferry IMAP: %w", err)
	}
	out := make(map[string]int64, len(list))
	for _, f := range list {
		out[f.Name] = f.Messages
	}
	return out, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
