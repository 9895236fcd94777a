package imapfront_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// previewMsgs are the messages of the "preview" script and TestPreview.
var previewMsgs = []string{
	// 1: plain text: leading blank lines, quoted lines, runs of spaces,
	// longer than a preview.
	"From: a@example.test\r\nSubject: p1\r\n\r\n\r\n   Hello  there,\r\n> quoted line\r\n>> more\r\n\tnext\tline " + strings.Repeat("word ", 80) + "\r\n",
	// 2: HTML with a style block, entities, a line break and a quote.
	"From: a@example.test\r\nSubject: p2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p {color: red}</style><title>T</title></head><body><p>Caf&eacute; &amp; more&nbsp;text</p><br><blockquote>quoted html</blockquote><script>var x=1;</script><div>after &lt;tag&gt; &#233;t&#xE9;</div></body></html>\r\n",
	// 3: multipart/alternative, plain then HTML.
	"From: a@example.test\r\nSubject: p3\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\npreamble\r\n--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain part\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html part</p>\r\n--b--\r\n",
	// 4: multipart/mixed, an attachment first, then text.
	"From: a@example.test\r\nSubject: p4\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b\r\nContent-Type: text/plain\r\n\r\ntext after attachment\r\n--b--\r\n",
	// 5: quoted-printable ISO-8859-1.
	"From: a@example.test\r\nSubject: p5\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me soft=\r\nbreak\r\n",
	// 6: no body.
	"From: a@example.test\r\nSubject: p6\r\n\r\n",
	// 7: base64 UTF-8 with a BOM.
	"From: a@example.test\r\nSubject: p7\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n77u/w4lsw6hu\r\n",
	// 8: an image only.
	"From: a@example.test\r\nSubject: p8\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n",
	// 9: multipart/alternative, HTML only, then a nested multipart/related.
	"From: a@example.test\r\nSubject: p9\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/html\r\n\r\n<div>nested <b>html</b></div>\r\n--i--\r\n--o--\r\n",
	// 10: plain text of a long line of one word, multi-byte.
	"From: a@example.test\r\nSubject: p10\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.Repeat("é", 300) + "\r\n",
	// 11, 12: how HTML becomes text.
	"Subject: p11\r\nContent-Type: text/html\r\n\r\n<p>a<b>b</b>c</p><p>d</p>x&unknown;y &#0;z &#x1F600; &quot;q&quot; &#39;s&#39; &apos;t&apos; &hellip; &euro;\r\n",
	"Subject: p12\r\nContent-Type: text/html\r\n\r\n<!-- comment -->text<![CDATA[cd]]> <STYLE>x</STYLE>Y<blockquote>q<blockquote>qq</blockquote>still</blockquote>end <a href=\"x>y\">link</a> <img alt=\"alt text\"> <br/>br\r\n> not quoted in html\r\n",
	// 13: text/plain attachment before the body; 14: text/plain named attachment only.
	"Subject: p13\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nattached text\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody text\r\n--b--\r\n",
	// 15: text/calendar, text/enriched: other text types.
	"Subject: p15\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\n",
	// 16: unknown charset; 17: a message/rfc822 part.
	"Subject: p16\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\nCaf\xe9 ok\r\n",
	"Subject: p17\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n",
	// 18: \r alone and a tab-only body, 19: an invalid UTF-8 byte in a utf-8 part.
	"Subject: p18\r\n\r\n\t \r\n \r\n",
	"Subject: p19\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbad \xff byte\r\n",
	// 19: XHTML after an image (no text/* part); 20: a text part in an
	// unknown transfer encoding.
	"Subject: p20\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: image/gif\r\n\r\nGIF\r\n--b\r\nContent-Type: application/xhtml+xml\r\n\r\n<html><body><p>x&amp;html</p></body></html>\r\n--b--\r\n",
	"Subject: p21\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-bogus\r\n\r\nas is\r\n",
}

// previewCmds are the "preview" script's commands.
var previewCmds = []string{
	"FETCH 1:* (PREVIEW)",
	"FETCH 1 (PREVIEW (LAZY))",
	"UID FETCH 2:3 (UID PREVIEW FLAGS)",
	"FETCH 1 (PREVIEW (BOGUS))",
	"FETCH 1 (PREVIEW ())",
	"FETCH 1 PREVIEW",
	"FETCH 1 (SNIPPET (LAZY=FUZZY))",
	"FETCH 1 (PREVIEW (LAZY=FUZZY))",
	"FETCH 1 (SNIPPET (FUZZY))",
	"FETCH 1 SNIPPET",
	"FETCH 1 (SNIPPET (LAZY))",
	"FETCH 6 (SNIPPET (LAZY=FUZZY))",
	"FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] PREVIEW)",
}

// previewWant are the previews Dovecot 2.3 gives for previewMsgs
// (TestSideBySide "preview").
var previewWant = []string{
	"Hello there, next line " + strings.TrimSuffix(strings.Repeat("word ", 35), " ") + " wo",
	"T Café & more\u00a0text after <tag> été",
	"plain part",
	"text after attachment",
	"Café crème softbreak",
	"",
	"Élèn",
	"",
	"nested html",
	strings.Repeat("é", 200),
	`a b c d xy z 😀 "q" 's' 't' … €`,
	"textcd Y end link br",
	"attached text",
	"BEGIN:VCALENDAR",
	"Caf\uFFFD ok",
	"",
	"",
	"bad \uFFFD byte",
	"",
	"",
}

// previewOf returns the PREVIEW of a FETCH response line (and the literal
// that may follow it), and the rest after it.
func previewOf(t *testing.T, resp string) (string, string) {
	t.Helper()
	i := strings.Index(resp, "PREVIEW ")
	if i < 0 {
		t.Fatalf("no PREVIEW in %q", resp)
	}
	rest := resp[i+len("PREVIEW "):]
	switch {
	case strings.HasPrefix(rest, `"`):
		j := strings.IndexByte(rest[1:], '"')
		return rest[1 : 1+j], rest[2+j:]
	case strings.HasPrefix(rest, "{"):
		j := strings.Index(rest, "}\r\n")
		n, err := strconv.Atoi(rest[1:j])
		if err != nil {
			t.Fatalf("literal in %q", resp)
		}
		return rest[j+3 : j+3+n], rest[j+3+n:]
	}
	t.Fatalf("PREVIEW of %q", resp)
	return "", ""
}

// TestPreview: PREVIEW (RFC 8970; MailKit's fetch of PreviewText sends it
// when the server offers it): the previews Dovecot 2.3 makes of the same
// messages (plain, HTML, multipart, encodings, charsets, quotes, 200
// characters), with LAZY, among other items, by UID; a modifier other
// than LAZY, or none in the list, is BAD. The RFC's examples (section 4):
// "FETCH 1 (RFC822.SIZE PREVIEW)", "(PREVIEW (LAZY))", and an empty
// preview for a message without text.
func TestPreview(t *testing.T) {
	e := newEnv(t, nil)
	for _, m := range previewMsgs {
		e.put(e.inbox(), m)
	}
	c := e.login()
	mustContain(t, "CAPABILITY", c.ok("CAPABILITY"), " PREVIEW ")
	c.ok("SELECT INBOX")
	rest := c.ok("FETCH 1:* (PREVIEW)")
	for i, want := range previewWant {
		var got string
		if !strings.HasPrefix(rest, fmt.Sprintf("* %d FETCH (", i+1)) {
			t.Fatalf("message %d: %q", i+1, rest)
		}
		got, rest = previewOf(t, rest)
		if got != want {
			t.Errorf("message %d: PREVIEW %q, want %q", i+1, got, want)
		}
		rest = rest[strings.Index(rest, "\r\n")+2:]
	}
	un := c.ok("FETCH 1 (RFC822.SIZE PREVIEW)")
	mustContain(t, "RFC822.SIZE PREVIEW", un, fmt.Sprintf("RFC822.SIZE %d", len(previewMsgs[0])))
	if got, _ := previewOf(t, un); got != previewWant[0] {
		t.Errorf("RFC822.SIZE PREVIEW: %q", un)
	}
	un = c.ok("FETCH 6 (PREVIEW (LAZY))")
	mustContain(t, "PREVIEW (LAZY)", un, `* 6 FETCH (UID 6 PREVIEW "")`)
	un = c.ok("UID FETCH 3 (FLAGS PREVIEW (lazy) BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	mustContain(t, "UID FETCH PREVIEW", un, `PREVIEW "plain part"`, "Subject: p3")
	un = c.ok("FETCH 3 PREVIEW")
	mustContain(t, "FETCH 3 PREVIEW", un, `PREVIEW "plain part"`)
	if un := c.ok("FETCH 1:* (FLAGS)"); strings.Contains(un, `\Seen`) {
		t.Errorf("PREVIEW set \\Seen: %q", un) // RFC 8970 3: it does not
	}
	for _, cmd := range []string{"FETCH 1 (PREVIEW (BOGUS))", "FETCH 1 (PREVIEW ())", "FETCH 1 (PREVIEW (LAZY BOGUS))", "FETCH 1 (PREVIEW (LAZY)"} {
		if st, all := c.status("%s", cmd); st != "BAD" {
			t.Errorf("%s: %s", cmd, all)
		}
	}
	c.ok("NOOP")
}

// TestPreviewLarge: PREVIEW of a 50 MB message whose text follows a 50 MB
// attachment, over the wire: answered, in bounded time
// (TestPreviewBounded holds the allocation bounds).
func TestPreviewLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("a 50 MB message")
	}
	e := newEnv(t, nil)
	e.put(e.inbox(), "Subject: att\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		strings.Repeat(strings.Repeat("A", 76)+"\r\n", 50<<20/78)+"--b\r\nContent-Type: text/plain\r\n\r\nthe text\r\n--b--\r\n")
	c := e.login()
	c.ok("SELECT INBOX")
	start := time.Now()
	un := c.ok("FETCH 1 (PREVIEW)")
	if got, _ := previewOf(t, un); got != "the text" {
		t.Errorf("PREVIEW %.100q", got)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("PREVIEW took %v", d)
	}
	c.ok("NOOP")
}
