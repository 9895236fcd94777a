package imapserver_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// TestExtractBodyStructureDigest: a multipart/digest's child without
// Content-Type is message/rfc822 (RFC 2046 5.1.5), with its envelope and
// structure, as its sections are read; one with a Content-Type keeps it,
// and a multipart/mixed's child without one is text/plain (fork change 54).
func TestExtractBodyStructureDigest(t *testing.T) {
	raw := "Content-Type: multipart/digest; boundary=x\r\n\r\n" +
		"--x\r\n\r\nSubject: in\r\n\r\nd\r\n" +
		"--x\r\nContent-Type: text/plain\r\n\r\nt\r\n" +
		"--x\r\nContent-Type: multipart/mixed; boundary=y\r\n\r\n--y\r\n\r\nm\r\n--y--\r\n" +
		"--x--\r\n"
	bs, ok := imapserver.ExtractBodyStructure(strings.NewReader(raw)).(*imap.BodyStructureMultiPart)
	if !ok || len(bs.Children) != 3 {
		t.Fatalf("structure %#v", bs)
	}
	c := bs.Children[0].(*imap.BodyStructureSinglePart)
	if c.Type != "message" || c.Subtype != "rfc822" || c.MessageRFC822 == nil || c.MessageRFC822.Envelope.Subject != "in" {
		t.Errorf("digest child without Content-Type: %#v", c)
	}
	if c := bs.Children[1].(*imap.BodyStructureSinglePart); c.Type != "text" || c.Subtype != "plain" {
		t.Errorf("digest child text/plain: %s/%s", c.Type, c.Subtype)
	}
	mixed := bs.Children[2].(*imap.BodyStructureMultiPart)
	if c := mixed.Children[0].(*imap.BodyStructureSinglePart); c.Type != "text" || c.Subtype != "plain" {
		t.Errorf("mixed child without Content-Type: %s/%s", c.Type, c.Subtype)
	}
}
