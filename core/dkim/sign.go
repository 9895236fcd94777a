package dkim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// signedFields are the header fields signed when present, in this order
// (RFC 6376 section 5.4.1's recommendations, plus the MIME and list
// fields whose change would change what the reader sees).
var signedFields = []string{
	"From", "Reply-To", "Sender", "Subject", "Date", "To", "Cc",
	"Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"Content-Disposition", "Content-ID", "Content-Description",
	"Resent-Date", "Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc",
	"Resent-Message-ID",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Unsubscribe-Post",
	"List-Subscribe", "List-Post", "List-Owner", "List-Archive",
	"Autocrypt", "OpenPGP",
}

// ErrNoFrom is returned by Sign for a message without a From field, which
// RFC 6376 section 5.4 requires every signature to cover.
var ErrNoFrom = errors.New("dkim: the message has no From header field")

// ErrHeaderTooLarge is returned by Sign for a message whose header section
// is over 256 KiB or has a field of over 1000 lines.
var ErrHeaderTooLarge = errors.New("dkim: " + errHeaderLarge)

// headerKeys is the h= list for a message with these fields: each signed
// field name once per occurrence, From once more (oversigned, RFC 6376
// section 8.15: a From added later breaks the signature).
func headerKeys(fields []field) []string {
	var keys []string
	for _, name := range signedFields {
		for range fieldsNamed(fields, name) {
			keys = append(keys, name)
		}
		if name == "From" {
			keys = append(keys, name)
		}
	}
	return keys
}

// Sign returns msg with one DKIM-Signature header field per key of the
// domain's active generation (Ed25519 first in the message, so verifiers
// that read top down meet it first) prepended; the rest of the bytes are
// msg's, unchanged. The domain's keys are made on first use. Signatures use
// relaxed/relaxed canonicalization and SHA-256 and sign the header fields of
// signedFields that msg has, From oversigned. A message whose header
// section has no empty line after it is signed as having an empty body.
//
// The relay calls this on outbound mail of a local domain (domain is the
// domain of the From address, or of the envelope sender when From is not
// local); on error it sends the message unsigned and logs the error.
func (k *Keyring) Sign(domain string, msg []byte) ([]byte, error) {
	sigs, err := k.Signatures(domain, msg)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(sigs)+len(msg))
	out = append(out, sigs...)
	return append(out, msg...), nil
}

// Signatures returns only the DKIM-Signature header fields Sign would
// prepend (each ending in CRLF), for callers that stream the message.
func (k *Keyring) Signatures(domain string, msg []byte) (string, error) {
	g, err := k.Active(domain)
	if err != nil {
		return "", err
	}
	h := scanHeader(msg)
	if len(fieldsNamed(h.fields, "From")) == 0 {
		return "", ErrNoFrom
	}
	if h.tooLarge() {
		return "", ErrHeaderTooLarge
	}
	var r io.Reader = bytes.NewReader(msg)
	if !h.complete {
		// go-msgauth needs the empty line that ends the header section.
		r = io.MultiReader(r, strings.NewReader(eolOf(msg)+"\r\n"))
	}
	d, err := canonicalDomain(domain)
	if err != nil {
		return "", err
	}
	keys := headerKeys(h.fields)
	signers := make([]*dkim.Signer, 0, len(g.Keys))
	ws := make([]io.Writer, 0, len(g.Keys))
	defer func() {
		for _, s := range signers {
			s.Close() // idempotent; ends the signer's goroutine on early return
		}
	}()
	for _, key := range g.Keys {
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 d,
			Selector:               key.Selector,
			Signer:                 key.signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             keys,
		})
		if err != nil {
			return "", fmt.Errorf("dkim: signing for %s with %s: %w", d, key.Selector, err)
		}
		signers = append(signers, s)
		ws = append(ws, s)
	}
	if _, err := io.Copy(io.MultiWriter(ws...), r); err != nil {
		return "", fmt.Errorf("dkim: signing for %s: %w", d, err)
	}
	var out strings.Builder
	for i, s := range signers {
		if err := s.Close(); err != nil {
			return "", fmt.Errorf("dkim: signing for %s with %s: %w", d, g.Keys[i].Selector, err)
		}
		out.WriteString(s.Signature())
	}
	return out.String(), nil
}

// eolOf is "" when msg ends in a line end (or is empty), else the line end
// needed to finish its last line.
func eolOf(msg []byte) string {
	if len(msg) == 0 || msg[len(msg)-1] == '\n' {
		return ""
	}
	return "\r\n"
}
