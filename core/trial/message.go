package trial

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode legacy charsets (RFC 2047, Content-Type charset)
	"github.com/emersion/go-message/mail"
)

// Message is a message decoded for reading: the built-in viewer shows
// it, and the checks compare it with what was sent.
type Message struct {
	Subject, From, To string
	Date              time.Time
	// Text is the text/plain part (CRLF turned into LF); HTML the text/html
	// part, if any.
	Text, HTML string
	// Attachments names the other parts.
	Attachments []string
}

// ParseMessage decodes a message for the viewer: the Subject, From, To and
// Date headers (RFC 5322, RFC 2047 encoded words) and the first text/plain
// and text/html parts, transfer-decoded (RFC 2045) and converted to UTF-8.
func ParseMessage(raw []byte) (Message, error) {
	var v Message
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if mr == nil {
		if err == nil {
			err = errors.New("no message")
		}
		return v, fmt.Errorf("the message cannot be parsed: %w", err)
	}
	defer mr.Close()
	h := mr.Header
	v.Subject, _ = h.Subject()
	if l, err := h.AddressList("From"); err == nil {
		v.From = addrList(l)
	} else {
		v.From = h.Get("From")
	}
	if l, err := h.AddressList("To"); err == nil {
		v.To = addrList(l)
	} else {
		v.To = h.Get("To")
	}
	v.Date, _ = h.Date()
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) {
			return v, fmt.Errorf("the message cannot be decoded: %w", err)
		}
		if p == nil {
			break
		}
		switch ph := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := ph.ContentType()
			b, rerr := io.ReadAll(p.Body)
			if rerr != nil {
				return v, fmt.Errorf("the message body cannot be decoded: %w", rerr)
			}
			text := strings.ReplaceAll(string(b), "\r\n", "\n")
			switch {
			case ct == "text/plain" && v.Text == "":
				v.Text = text
			case ct == "text/html" && v.HTML == "":
				v.HTML = text
			default:
				v.Attachments = append(v.Attachments, ct)
			}
		case *mail.AttachmentHeader:
			name, _ := ph.Filename()
			if name == "" {
				name, _, _ = mime.ParseMediaType(ph.Get("Content-Type"))
			}
			v.Attachments = append(v.Attachments, name)
		}
	}
	return v, nil
}

func addrList(l []*mail.Address) string {
	var s []string
	for _, a := range l {
		if a.Name != "" {
			s = append(s, a.Name+" <"+a.Address+">")
		} else {
			s = append(s, a.Address)
		}
	}
	return strings.Join(s, ", ")
}
