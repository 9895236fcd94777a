package relay

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"mailferry/core/store"
)

// maxDSNHeaders bounds the original header section returned in a DSN.
const maxDSNHeaders = 64 << 10

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// headerSection returns the header section of a message (up to and
// without the empty line), at most maxDSNHeaders bytes, cut at a line end.
func headerSection(msg []byte) []byte {
	end := len(msg)
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		end = i + 2
	} else if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		end = i + 1
	}
	h := msg[:end]
	if len(h) > maxDSNHeaders {
		h = h[:maxDSNHeaders]
		if i := bytes.LastIndexByte(h, '\n'); i >= 0 {
			h = h[:i+1]
		}
	}
	return h
}

// crlf converts bare LF line ends to CRLF.
func crlf(b []byte) []byte {
	var out bytes.Buffer
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// buildDSN makes a delivery status notification (RFC 3464) for the
// recipients of a queue item that failed for good: a multipart/report
// (RFC 6522) with a human-readable part, a message/delivery-status part and
// the original header section (text/rfc822-headers, or message/global-
// headers per RFC 6533 when it is not ASCII).
func (r *Relay) buildDSN(it *store.QueueItem, body []byte, fails []outcome) ([]byte, error) {
	host := r.opts.Hostname
	boundary := "=_mailferry_" + newID()
	now := time.Now()
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	w("From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host)
	w("To: <%s>\r\n", it.From)
	w("Subject: Undelivered Mail Returned to Sender\r\n")
	w("Date: %s\r\n", now.Format(time.RFC1123Z))
	w("Message-ID: <%s.dsn@%s>\r\n", newID(), host)
	w("Auto-Submitted: auto-replied\r\n") // RFC 3834
	w("MIME-Version: 1.0\r\n")
	w("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary)
	w("\r\n")
	w("This is a MIME-encapsulated delivery status notification.\r\n")

	w("\r\n--%s\r\n", boundary)
	w("Content-Type: text/plain; charset=utf-8\r\n")
	w("Content-Transfer-Encoding: 8bit\r\n\r\n")
	w("This is the mail system at %s.\r\n\r\n", host)
	w("Your message could not be delivered to the following recipients:\r\n\r\n")
	for _, o := range fails {
		w("<%s>: %s\r\n", o.rcpt, o.detail)
	}

	w("\r\n--%s\r\n", boundary)
	w("Content-Type: message/delivery-status\r\n\r\n")
	w("Reporting-MTA: dns; %s\r\n", host)
	w("Arrival-Date: %s\r\n", it.Created.Format(time.RFC1123Z))
	for _, o := range fails {
		w("\r\n")
		addrType := "rfc822"
		if !isASCII(o.rcpt) {
			addrType = "utf-8" // RFC 6533
		}
		w("Final-Recipient: %s; %s\r\n", addrType, o.rcpt)
		w("Action: failed\r\n")
		status := o.status
		if status == "" {
			status = "5.0.0"
		}
		w("Status: %s\r\n", status)
		if o.remote != "" {
			w("Remote-MTA: dns; %s\r\n", oneLine(o.remote))
		}
		if o.detail != "" {
			kind := "X-Mailferry"
			if o.remote != "" {
				kind = "smtp"
			}
			w("Diagnostic-Code: %s; %s\r\n", kind, o.detail)
		}
		w("Last-Attempt-Date: %s\r\n", now.Format(time.RFC1123Z))
	}

	if h := headerSection(body); len(h) > 0 {
		ct := "text/rfc822-headers"
		if !isASCII(string(h)) {
			ct = "message/global-headers"
		}
		w("\r\n--%s\r\n", boundary)
		w("Content-Type: %s\r\n\r\n", ct)
		h = crlf(h)
		b.Write(h)
		if !bytes.HasSuffix(h, []byte("\r\n")) {
			w("\r\n")
		}
	}
	w("\r\n--%s--\r\n", boundary)
	return b.Bytes(), nil
}
