package imapfront

import (
	"bytes"
	"io"
	"strings"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // legacy charsets of text parts
	"golang.org/x/net/html"
)

// PREVIEW (RFC 8970; MailKit sends it for a message list's preview text
// when the server offers it, and fetches body parts otherwise). The
// preview is made as Dovecot 2.3 makes it (lib-mail message-snippet.c and
// mail-html2text.c), so that a client sees the same text after the move:
//
//   - the first text/* part in the MIME tree, whatever its disposition
//     (message/rfc822 parts are not entered); none: "";
//   - its transfer encoding and charset decoded (an unknown charset as it
//     is, an unknown transfer encoding no text), invalid UTF-8 as U+FFFD, a
//     byte order mark and NULs dropped;
//   - text/html (and xhtml) as text: tags are spaces, comments dropped,
//     CDATA kept, style, script and blockquote contents dropped, entities
//     decoded (unknown ones and &#0; dropped);
//   - lines beginning with '>' (quotes) skipped, runs of white space one
//     space, leading white space none;
//   - at most previewChars characters.
//
// Bounded for hostile messages: at most previewInput decoded bytes of the
// text part are looked at (Dovecot reads the part to its end when it holds
// only quotes or white space), at most previewParts parts visited and
// previewDepth levels of multipart entered; the message's bytes are already
// in memory, as for BODY[].

const (
	previewChars = 200 // Dovecot 2.3's length (RFC 8970: at most 256)
	previewInput = 256 << 10
	previewParts = 1000
	previewDepth = 20
)

// preview returns a message's preview text.
func preview(raw []byte) (out string) {
	defer func() {
		if recover() != nil {
			out = "" // a message the MIME reader chokes on has no preview
		}
	}()
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
		return ""
	}
	parts := previewParts
	s, _ := previewEntity(e, gomessage.IsUnknownEncoding(err), 0, &parts)
	return s
}

// previewEntity finds the first text part under e and makes its preview;
// ok is whether there was one. A text part in a transfer encoding not
// known (badEnc) has an empty preview, as Dovecot's.
func previewEntity(e *gomessage.Entity, badEnc bool, depth int, parts *int) (string, bool) {
	if mr := e.MultipartReader(); mr != nil {
		if depth >= previewDepth {
			return "", false
		}
		for {
			p, err := mr.NextPart()
			if err != nil && (p == nil || !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err)) {
				return "", false
			}
			if *parts--; *parts < 0 {
				return "", false
			}
			if s, ok := previewEntity(p, gomessage.IsUnknownEncoding(err), depth+1, parts); ok {
				return s, true
			}
		}
	}
	ct, _, err := e.Header.ContentType()
	if err != nil || ct == "" {
		ct = "text/plain"
	}
	ct = strings.ToLower(ct)
	if !strings.HasPrefix(ct, "text/") {
		return "", false
	}
	if badEnc {
		return "", true
	}
	body, _ := io.ReadAll(io.LimitReader(e.Body, previewInput))
	text := string(body)
	if ct == "text/html" || ct == "application/xhtml+xml" {
		text = htmlText(text)
	}
	return snippet(text), true
}

// snippet is the preview of a part's text (message-snippet.c's
// snippet_generate).
func snippet(text string) string {
	const (
		newline = iota // at the beginning of a line
		normal
		quoted // in a line quoted with '>': skipped to its end
	)
	var b strings.Builder
	state, space, left := newline, false, previewChars
runes:
	for _, r := range text {
		switch state {
		case quoted:
			if r == '\n' {
				state = newline
			}
			continue
		case newline:
			if r == '>' {
				state = quoted
				continue
			}
			state = normal
		}
		switch r {
		case 0xFEFF, 0:
			continue
		case '\r', '\n', '\t', ' ':
			space = space || b.Len() > 0 // no leading white space
			if r == '\n' {
				state = newline
			}
			continue
		}
		if space {
			// As Dovecot: the space goes in before the count is checked.
			space = false
			b.WriteByte(' ')
			if left == 0 {
				break runes
			}
			left--
		}
		if left == 0 {
			break runes
		}
		left--
		b.WriteRune(r) // an invalid byte came as U+FFFD
	}
	return b.String()
}

// htmlText turns HTML into the text a preview is made of, as Dovecot's
// mail-html2text.c does: a tag (start or end) is a space, a comment
// nothing, CDATA its text; the contents of style, script and blockquote
// (quotes) are dropped; entities are decoded, unknown ones dropped; line
// ends stay, so that snippet skips text lines beginning with '>'.
func htmlText(s string) string {
	var b strings.Builder
	skip := 0 // depth in style, script and blockquote elements
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '<' && strings.HasPrefix(s[i:], "<!--"):
			end := strings.Index(s[i+4:], "-->")
			if end < 0 {
				return b.String()
			}
			i += 4 + end + 3
		case c == '<' && strings.HasPrefix(s[i:], "<![CDATA["):
			end := strings.Index(s[i+9:], "]]>")
			if end < 0 {
				end = len(s) - i - 9
			}
			if skip == 0 {
				b.WriteString(s[i+9 : i+9+end])
			}
			i = min(len(s), i+9+end+3)
		case c == '<':
			n, name, closing := htmlTag(s[i:])
			i += n
			switch name {
			case "style", "script", "blockquote":
				if closing {
					skip = max(skip-1, 0)
				} else {
					skip++
				}
			}
			if skip == 0 {
				b.WriteByte(' ')
			}
		case c == '&':
			n, text := htmlEntity(s[i:])
			i += n
			if skip == 0 {
				b.WriteString(text)
			}
		default:
			if skip == 0 {
				b.WriteByte(c)
			}
			i++
		}
	}
	return b.String()
}

// htmlTag reads a tag at the start of s (s[0] is '<'): its length up to
// and with its '>' (quoted attribute values may hold '>'), its name in
// lower case, and whether it is an end tag.
func htmlTag(s string) (n int, name string, closing bool) {
	i := 1
	if i < len(s) && s[i] == '/' {
		closing = true
		i++
	}
	start := i
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
		i++
	}
	name = strings.ToLower(s[start:i])
	var quote byte
	for ; i < len(s); i++ {
		switch {
		case quote != 0:
			if s[i] == quote {
				quote = 0
			}
		case s[i] == '"' || s[i] == '\'':
			quote = s[i]
		case s[i] == '>':
			return i + 1, name, closing
		}
	}
	return len(s), name, closing
}

// htmlEntity reads a character reference at the start of s (s[0] is '&'):
// its length and its text; an unknown one (or &#0;) is dropped, a '&'
// that starts none is itself. Its ';' is looked for within the 32 bytes a
// reference may take: looked for to the text's end, 256 KiB of '&' (any
// sender's HTML part) were 2^17 scans of 128 KiB on average, 0.37 s of CPU
// for one message's preview (TestPreviewHostileHTMLLinear).
func htmlEntity(s string) (n int, text string) {
	end := strings.IndexByte(s[:min(len(s), 33)], ';')
	if end < 2 || end > 32 || strings.ContainsAny(s[1:end], " \t\r\n<&") {
		return 1, "&"
	}
	ref := s[:end+1]
	dec := html.UnescapeString(ref)
	if dec == ref || dec == "\uFFFD" && (ref == "&#0;" || strings.HasPrefix(ref, "&#") && isZeroRef(ref)) {
		return end + 1, ""
	}
	return end + 1, dec
}

// isZeroRef reports whether a numeric character reference names U+0000.
func isZeroRef(ref string) bool {
	digits := strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(ref, "&#"), "x"), "X"), "0")
	return digits == ";"
}
