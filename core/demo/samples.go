package demo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// Language is a language the assistant can send a sample message in.
type Language struct {
	// Code is the BCP 47 tag, e.g. "de".
	Code string
	// Name is the English name, e.g. "German".
	Name string
	// Native is the name in the language itself, e.g. "Deutsch".
	Native string
}

// langText is the content of one language sample.
type langText struct {
	Language
	subject string
	body    string // CRLF line endings
	// subjectB selects RFC 2047 B encoding for the subject (Q otherwise),
	// and bodyBase64 base64 for the body (quoted-printable otherwise), as a
	// typical mail client does for mostly non-Latin text.
	subjectB, bodyBase64 bool
}

// languages holds the supported sample languages, in the order Languages
// returns them. The sentences are real, correct text with native characters.
var languages = []langText{
	{
		Language: Language{Code: "de", Name: "German", Native: "Deutsch"},
		subject:  "Mailferry-Test: Grüße aus München – Größe, Maß und Übermut",
		body: "Hallo,\r\n\r\n" +
			"dies ist eine Testnachricht von Mailferry. Sie enthält deutsche Umlaute und das Eszett: ä, ö, ü, Ä, Ö, Ü, ß.\r\n\r\n" +
			"Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.\r\n\r\n" +
			"Viele Grüße\r\n",
	},
	{
		Language: Language{Code: "ro", Name: "Romanian", Native: "Română"},
		subject:  "Test Mailferry: Salutări din București, orașul în care țin ședința",
		body: "Bună ziua,\r\n\r\n" +
			"Acesta este un mesaj de test trimis de Mailferry. Conține diacriticele românești: ă, â, î, ș, ț, Ă, Â, Î, Ș, Ț.\r\n\r\n" +
			"Muzicologă în bej vând whisky și tequila, preț fix.\r\n\r\n" +
			"Cu stimă\r\n",
	},
	{
		Language: Language{Code: "ru", Name: "Russian", Native: "Русский"},
		subject:  "Тест Mailferry: привет из Москвы",
		body: "Здравствуйте!\r\n\r\n" +
			"Это тестовое сообщение от Mailferry. Оно содержит русские буквы, включая ё и Ё.\r\n\r\n" +
			"Съешь же ещё этих мягких французских булок, да выпей чаю.\r\n\r\n" +
			"С уважением\r\n",
		subjectB: true, bodyBase64: true,
	},
	{
		Language: Language{Code: "el", Name: "Greek", Native: "Ελληνικά"},
		subject:  "Δοκιμή Mailferry: χαιρετισμούς από την Αθήνα",
		body: "Γεια σας,\r\n\r\n" +
			"Αυτό είναι ένα δοκιμαστικό μήνυμα από το Mailferry. Περιέχει ελληνικούς χαρακτήρες με τόνους και διαλυτικά: ά, έ, ή, ί, ό, ύ, ώ, ϊ, ϋ, ΐ.\r\n\r\n" +
			"Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.\r\n\r\n" +
			"Με εκτίμηση\r\n",
		subjectB: true, bodyBase64: true,
	},
	{
		Language: Language{Code: "ja", Name: "Japanese", Native: "日本語"},
		subject:  "Mailferry テスト：東京からのご挨拶",
		body: "こんにちは。\r\n\r\n" +
			"これは Mailferry からのテストメッセージです。ひらがな、カタカナ、漢字が含まれています。\r\n\r\n" +
			"いろはにほへと　ちりぬるを\r\n\r\n" +
			"よろしくお願いいたします。\r\n",
		subjectB: true, bodyBase64: true,
	},
	{
		Language: Language{Code: "zh", Name: "Chinese (Simplified)", Native: "简体中文"},
		subject:  "Mailferry 测试：来自北京的问候",
		body: "您好！\r\n\r\n" +
			"这是一封来自 Mailferry 的测试邮件，其中包含简体中文字符。\r\n\r\n" +
			"敏捷的棕色狐狸跳过了那只懒狗。\r\n\r\n" +
			"此致\r\n敬礼\r\n",
		subjectB: true, bodyBase64: true,
	},
	{
		Language: Language{Code: "fr", Name: "French", Native: "Français"},
		subject:  "Test Mailferry : bonjour de Montréal, où l’été est déjà là",
		body: "Bonjour,\r\n\r\n" +
			"Ceci est un message de test envoyé par Mailferry. Il contient des lettres accentuées : à, â, ç, é, è, ê, ë, î, ï, ô, ù, û, ü, ÿ, œ, æ.\r\n\r\n" +
			"Portez ce vieux whisky au juge blond qui fume.\r\n\r\n" +
			"Cordialement\r\n",
	},
	{
		Language: Language{Code: "pl", Name: "Polish", Native: "Polski"},
		subject:  "Test Mailferry: pozdrowienia z Łodzi i Gdańska",
		body: "Dzień dobry,\r\n\r\n" +
			"To jest wiadomość testowa wysłana przez Mailferry. Zawiera polskie znaki: ą, ć, ę, ł, ń, ó, ś, ź, ż.\r\n\r\n" +
			"Pchnąć w tę łódź jeża lub ośm skrzyń fig.\r\n\r\n" +
			"Z poważaniem\r\n",
	},
}

// Languages lists the languages Samples supports, in a stable order.
func Languages() []Language {
	l := make([]Language, len(languages))
	for i, lt := range languages {
		l[i] = lt.Language
	}
	return l
}

// Sample is one message the assistant sends through the old SMTP server in
// its "samples" step and then looks for on the old IMAP server.
type Sample struct {
	// Name identifies the sample: "plain", "html" or "lang-" + language code.
	Name string
	// Language is the language code for language samples, else "".
	Language string
	// Subject is the decoded Subject.
	Subject string
	// Text is the decoded text/plain body (CRLF line endings) the receiver
	// must see.
	Text string
	// HTML is the decoded text/html body of the "html" sample, else "".
	HTML string
	// MessageID is the Message-ID without angle brackets; it is unique on
	// every call of Samples.
	MessageID string
	// Raw is the complete RFC 5322 message with CRLF line endings.
	Raw []byte
}

// SampleHeader is the header field that names the sample in each Raw message,
// so the assistant can find samples on the old server besides by Message-ID.
const SampleHeader = "X-Mailferry-Sample"

// Samples builds the sample messages from from to to, dated date: one plain
// text, one HTML (multipart/alternative) and one per code in languageCodes
// (see Languages), in that order. Unknown codes are skipped. Each message gets
// a new, unique Message-ID. Control characters in from and to are replaced
// with spaces.
func Samples(from, to string, languageCodes []string, date time.Time) []Sample {
	from, to = oneLine(from), oneLine(to)
	var out []Sample
	add := func(s Sample, err error) {
		if err != nil {
			// Only a bug in this package can make go-message fail on a
			// bytes.Buffer; keep going with the other samples.
			panic(fmt.Sprintf("demo: building sample %s: %v", s.Name, err))
		}
		out = append(out, s)
	}

	add(buildPlain(from, to, date, "plain", "", "Mailferry test: plain text message",
		"Hello,\r\n\r\n"+
			"this is a plain text test message sent by Mailferry through your old mail server.\r\n"+
			"If you can read it in the new mailbox, plain text mail survives the move.\r\n\r\n"+
			"-- \r\nMailferry\r\n", false, false))

	add(buildHTML(from, to, date))

	for _, code := range languageCodes {
		for _, lt := range languages {
			if strings.EqualFold(lt.Code, code) {
				add(buildPlain(from, to, date, "lang-"+lt.Code, lt.Code, lt.subject, lt.body, lt.subjectB, lt.bodyBase64))
				break
			}
		}
	}
	return out
}

// headerOrder is the order in which sample header fields are written, as a
// typical mail client does.
var headerOrder = []string{"Date", "From", "To", "Subject", "Message-Id", SampleHeader,
	"Content-Language", "User-Agent", "Mime-Version", "Content-Type", "Content-Transfer-Encoding"}

// ordered returns a copy of h whose fields are written in headerOrder
// (go-message writes the field added last first).
func ordered(h mail.Header) mail.Header {
	var out mail.Header
	for i := len(headerOrder) - 1; i >= 0; i-- {
		k := headerOrder[i]
		if !h.Has(k) {
			continue
		}
		v := h.Get(k)
		if line := k + ": " + v; len(line) > 76 && k != "Content-Type" && foldsWithin(line, 998) {
			// go-message cannot fold before a long first encoded-word and
			// then writes one line of up to 998 octets; fold as mail
			// clients do (RFC 5322 section 2.2.3).
			out.AddRaw([]byte(fold(line) + "\r\n"))
		} else {
			out.Add(k, v)
		}
	}
	return out
}

// foldsWithin reports whether fold(line) has no line longer than max.
func foldsWithin(line string, max int) bool {
	for _, l := range strings.Split(fold(line), "\r\n") {
		if len(l) > max {
			return false
		}
	}
	return true
}

// sampleHeader returns the common header of every sample and its Message-ID.
func sampleHeader(from, to string, date time.Time, name, lang, subject string, subjectB bool) (mail.Header, string) {
	var h mail.Header
	h.SetDate(date)
	if a, err := mail.ParseAddress(from); err == nil {
		h.SetAddressList("From", []*mail.Address{a})
	} else {
		h.Set("From", from)
	}
	if a, err := mail.ParseAddress(to); err == nil {
		h.SetAddressList("To", []*mail.Address{a})
	} else {
		h.Set("To", to)
	}
	if subjectB {
		h.Set("Subject", mime.BEncoding.Encode("utf-8", subject))
	} else {
		h.SetSubject(subject)
	}
	id := newMessageID(name, from)
	h.SetMessageID(id)
	h.Set(SampleHeader, name)
	if lang != "" {
		h.Set("Content-Language", lang)
	}
	h.Set("User-Agent", "Mailferry")
	h.Set("MIME-Version", "1.0")
	return h, id
}

func buildPlain(from, to string, date time.Time, name, lang, subject, body string, subjectB, base64 bool) (Sample, error) {
	s := Sample{Name: name, Language: lang, Subject: subject, Text: body}
	h, id := sampleHeader(from, to, date, name, lang, subject, subjectB)
	s.MessageID = id
	h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	if base64 {
		h.Set("Content-Transfer-Encoding", "base64")
	} else {
		h.Set("Content-Transfer-Encoding", "quoted-printable")
	}
	var buf bytes.Buffer
	w, err := mail.CreateSingleInlineWriter(&buf, ordered(h))
	if err != nil {
		return s, err
	}
	if err := writeClose(w, body); err != nil {
		return s, err
	}
	s.Raw = crlfTerminated(buf.Bytes())
	return s, nil
}

func buildHTML(from, to string, date time.Time) (Sample, error) {
	const subject = "Mailferry test: HTML message"
	text := "Hello,\r\n\r\n" +
		"this is an HTML test message sent by Mailferry. This is its plain text alternative.\r\n" +
		"The HTML part has bold, italic and a table.\r\n"
	html := "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>Mailferry test</title></head>\r\n" +
		"<body>\r\n<p>Hello,</p>\r\n" +
		"<p>this is an <b>HTML</b> test message sent by <i>Mailferry</i>. This is its HTML alternative.</p>\r\n" +
		"<table border=\"1\"><tr><th>Check</th><th>Result</th></tr><tr><td>HTML survives</td><td>&#10004;</td></tr></table>\r\n" +
		"</body></html>\r\n"
	s := Sample{Name: "html", Subject: subject, Text: text, HTML: html}
	h, id := sampleHeader(from, to, date, "html", "", subject, false)
	s.MessageID = id
	// A boundary of our own keeps go-message from re-setting Content-Type,
	// which would move it to the top of the header.
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	h.SetContentType("multipart/alternative", map[string]string{"boundary": "mailferry-" + hex.EncodeToString(rnd[:])})
	var buf bytes.Buffer
	mw, err := message.CreateWriter(&buf, ordered(h).Header)
	if err != nil {
		return s, err
	}
	for _, part := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", html}} {
		var ph message.Header
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		ph.SetContentType(part.typ, map[string]string{"charset": "utf-8"})
		w, err := mw.CreatePart(ph)
		if err != nil {
			return s, err
		}
		if err := writeClose(w, part.body); err != nil {
			return s, err
		}
	}
	if err := mw.Close(); err != nil {
		return s, err
	}
	s.Raw = crlfTerminated(buf.Bytes())
	return s, nil
}

// oneLine replaces control characters (CR, LF, ...) with spaces, so an
// address typed by a user cannot break or inject header fields.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// crlfTerminated makes sure raw ends with CRLF: SMTP (RFC 5321 section
// 4.1.1.4) would add it anyway, and the bytes sent must be the bytes stored.
func crlfTerminated(raw []byte) []byte {
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		raw = append(raw, '\r', '\n')
	}
	return raw
}

func writeClose(w io.WriteCloser, body string) error {
	if _, err := io.WriteString(w, body); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// newMessageID returns a unique Message-ID (without angle brackets) in the
// domain of from, or "mailferry.invalid".
func newMessageID(name, from string) string {
	domain := "mailferry.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if at := strings.LastIndexByte(a.Address, '@'); at >= 0 && at < len(a.Address)-1 {
			domain = a.Address[at+1:]
		}
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("mailferry-sample-%s-%s@%s", name, hex.EncodeToString(b[:]), domain)
}
