package demo

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"golang.org/x/text/encoding/charmap"
)

// Keyword flags used by the seed data (RFC 5788 registry and a private one).
const (
	flagForwarded imap.Flag = "$Forwarded"
	flagMDNSent   imap.Flag = "$MDNSent"
	flagWork      imap.Flag = "Work"
	flagPersonal  imap.Flag = "Personal"
)

// folder describes one seeded mailbox.
type folder struct {
	name         string
	use          []imap.MailboxAttr
	unsubscribed bool
}

// seedMsg is one seeded message: its mailbox, INTERNALDATE, flags and bytes.
type seedMsg struct {
	box   string
	date  time.Time
	flags []imap.Flag
	raw   []byte
}

// Time zones of the seed data, including half- and three-quarter-hour ones.
var (
	zBerlin   = time.FixedZone("CET", 1*3600)
	zBerlinS  = time.FixedZone("CEST", 2*3600)
	zBucurest = time.FixedZone("EET", 2*3600)
	zMoscow   = time.FixedZone("MSK", 3*3600)
	zAthens   = time.FixedZone("EEST", 3*3600)
	zTokyo    = time.FixedZone("JST", 9*3600)
	zShanghai = time.FixedZone("CST", 8*3600)
	zNewYork  = time.FixedZone("EST", -5*3600)
	zLA       = time.FixedZone("PDT", -7*3600)
	zIndia    = time.FixedZone("IST", 5*3600+1800)
	zNepal    = time.FixedZone("NPT", 5*3600+2700)
)

// seed creates INBOX for every account and, if rich, the seed folders and
// messages. Mailboxes are created in a fixed order, so UIDVALIDITY values
// (imapmemserver numbers them 1, 2, 3, … per user) are deterministic.
func (s *Server) seed(rich bool) error {
	addrs := make([]string, 0, len(s.accounts))
	for addr := range s.accounts {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	richAddr := ""
	if rich {
		richAddr = "alice@" + s.domain
		if s.accounts[richAddr] == nil {
			richAddr = ""
			for _, a := range addrs {
				if a != s.catchAll {
					richAddr = a
					break
				}
			}
		}
	}
	s.richAddr = richAddr
	for _, addr := range addrs {
		acct := s.accounts[addr]
		var folders []folder
		var msgs []seedMsg
		switch {
		case !rich:
			folders = []folder{{name: "INBOX"}}
		case addr == richAddr:
			folders, msgs = richMailbox(addr, s.domain)
		case addr == s.catchAll:
			folders = []folder{{name: "INBOX"}}
		default:
			folders, msgs = plainMailbox(addr, s.domain)
		}
		for _, f := range folders {
			if err := acct.create(f.name, f.use); err != nil {
				return fmt.Errorf("%s: create %q: %w", addr, f.name, err)
			}
			if !f.unsubscribed {
				if err := acct.subscribe(f.name, true); err != nil {
					return fmt.Errorf("%s: subscribe %q: %w", addr, f.name, err)
				}
			}
		}
		for _, m := range msgs {
			if _, err := acct.appendMessage(m.box, m.raw, m.flags, m.date); err != nil {
				return fmt.Errorf("%s: append to %q: %w", addr, m.box, err)
			}
		}
	}
	return nil
}

// SeedFolders returns the mailboxes the rich seed account has, in creation
// order, with their special-use attribute ("" for none) and subscription.
// "Données" is not in the list: it exists only as the \Noselect parent of
// "Données/Été 2020".
func SeedFolders() []SeedFolder {
	folders, _ := richMailbox("alice@"+DefaultDomain, DefaultDomain)
	out := make([]SeedFolder, len(folders))
	for i, f := range folders {
		out[i] = SeedFolder{Name: f.name, Subscribed: !f.unsubscribed}
		if len(f.use) > 0 {
			out[i].SpecialUse = f.use[0]
		}
	}
	return out
}

// SeedMessage is one message of the rich seed account, as Start stores it.
type SeedMessage struct {
	Mailbox      string
	Flags        []imap.Flag
	InternalDate time.Time
	Raw          []byte
}

// SeedMessages returns the messages Start stores for the rich seed account
// with the given address (see Server.SeedAccount), in APPEND order: the n-th
// message of a mailbox here has UID n there.
func SeedMessages(address string) []SeedMessage {
	address = strings.ToLower(address)
	domain := address[strings.LastIndexByte(address, '@')+1:]
	_, msgs := richMailbox(address, domain)
	out := make([]SeedMessage, len(msgs))
	for i, m := range msgs {
		out[i] = SeedMessage{Mailbox: m.box, Flags: m.flags, InternalDate: m.date, Raw: m.raw}
	}
	return out
}

// SeedFolder describes one mailbox of the rich seed account.
type SeedFolder struct {
	Name       string
	SpecialUse imap.MailboxAttr
	Subscribed bool
}

// standardFolders are the folders every seeded user has.
var standardFolders = []folder{
	{name: "INBOX"},
	{name: "Sent", use: []imap.MailboxAttr{imap.MailboxAttrSent}},
	{name: "Drafts", use: []imap.MailboxAttr{imap.MailboxAttrDrafts}},
	{name: "Trash", use: []imap.MailboxAttr{imap.MailboxAttrTrash}},
}

// plainMailbox is the seed of an ordinary user: standard folders, two mails.
func plainMailbox(addr, domain string) ([]folder, []seedMsg) {
	local := addr[:strings.IndexByte(addr, '@')]
	d1 := time.Date(2024, 3, 4, 9, 15, 0, 0, zBerlin)
	d2 := time.Date(2024, 3, 5, 17, 2, 11, 0, zNewYork)
	return standardFolders, []seedMsg{
		{box: "INBOX", date: d1.Add(3 * time.Second), flags: []imap.Flag{imap.FlagSeen}, raw: textMail(
			hdr("Postmaster <postmaster@"+domain+">", addr, "Welcome to your mailbox", d1, "welcome-"+local+"@"+domain),
			"Hello "+local+",\r\n\r\nyour mailbox on "+domain+" is ready.\r\n\r\n-- \r\nThe postmaster\r\n")},
		{box: "INBOX", date: d2.Add(2 * time.Second), raw: textMail(
			hdr("Alice Example <alice@"+domain+">", addr, "Agenda for Thursday", d2, "agenda-"+local+"@"+domain),
			"Hi,\r\n\r\nhere is the agenda for Thursday:\r\n\r\n1. Budget\r\n2. Migration of the mail server\r\n3. Any other business\r\n\r\nAlice\r\n")},
		{box: "Sent", date: d2.Add(time.Hour), flags: []imap.Flag{imap.FlagSeen}, raw: textMail(
			hdr(addr, "Alice Example <alice@"+domain+">", "Re: Agenda for Thursday", d2.Add(time.Hour), "re-agenda-"+local+"@"+domain,
				"In-Reply-To", "<agenda-"+local+"@"+domain+">"),
			"Thanks, see you then.\r\n")},
	}
}

// richMailbox is the seed of the showcase user: many folders, ~20 INBOX
// messages in several languages, charsets, structures, flags and zones.
func richMailbox(addr, domain string) ([]folder, []seedMsg) {
	folders := append(append([]folder(nil), standardFolders...),
		folder{name: "Junk", use: []imap.MailboxAttr{imap.MailboxAttrJunk}}, // stays empty
		folder{name: "Archive", use: []imap.MailboxAttr{imap.MailboxAttrArchive}},
		folder{name: "Archive/2020"},
		folder{name: "Données/Été 2020"},
		folder{name: "Newsletters", unsubscribed: true},
	)

	me := "Alice Example <" + addr + ">"
	bob := "Bob Builder <bob@" + domain + ">"
	carol := "Carol Singer <carol@" + domain + ">"
	id := func(s string) string { return s + "@" + domain }
	var m []seedMsg
	add := func(box string, delay time.Duration, date time.Time, flags []imap.Flag, raw []byte) {
		m = append(m, seedMsg{box: box, date: date.Add(delay), flags: flags, raw: raw})
	}
	seen := []imap.Flag{imap.FlagSeen}

	// 1. Plain ASCII, answered.
	d := time.Date(2019, 11, 4, 12, 30, 5, 0, zBerlin)
	add("INBOX", 4*time.Second, d, []imap.Flag{imap.FlagSeen, imap.FlagAnswered}, textMail(
		hdr(bob, me, "Lunch on Friday?", d, id("lunch-1")),
		"Hi Alice,\r\n\r\nshall we have lunch on Friday at the Italian place?\r\n12:30 would suit me.\r\n\r\nBob\r\n"))

	// 2. The reply thread continues (References, In-Reply-To).
	d = time.Date(2019, 11, 4, 14, 2, 0, 0, zBerlin)
	add("INBOX", 2*time.Second, d, seen, textMail(
		hdr(bob, me, "Re: Lunch on Friday?", d, id("lunch-3"),
			"In-Reply-To", "<"+id("lunch-2")+">",
			"References", "<"+id("lunch-1")+"> <"+id("lunch-2")+">"),
		"Great, table booked for two.\r\n\r\n> 12:30 is fine, see you there.\r\n\r\nBob\r\n"))

	// 3. HTML only, from a service.
	d = time.Date(2020, 2, 17, 6, 0, 0, 0, zLA)
	add("INBOX", 40*time.Second, d, seen, singlePart(
		hdr("Cloud Weekly <digest@news.example>", me, "Your weekly digest: 5 stories", d, "digest-2020-07@news.example"),
		"text/html; charset=utf-8", "quoted-printable", qp([]byte(
			"<html><body><h1>Your weekly digest</h1><ul><li>Story one</li><li>Story two</li>"+
				"<li>Story three</li><li>Story four</li><li>Story five</li></ul>"+
				"<p style=\"color:#888\">You receive this because you subscribed. <a href=\"https://news.example/unsub\">Unsubscribe</a></p></body></html>\r\n"))))

	// 4. multipart/alternative, flagged, keyword Work.
	d = time.Date(2021, 6, 1, 9, 45, 30, 0, zBerlinS)
	add("INBOX", 3*time.Second, d, []imap.Flag{imap.FlagSeen, imap.FlagFlagged, flagWork}, alternative(
		hdr(carol, me+", "+bob, "Project kickoff notes", d, id("kickoff"), "Cc", "Dave Ops <dave@ops.example>"),
		"Hi all,\r\n\r\nnotes from today's kickoff:\r\n- scope agreed\r\n- first milestone in July\r\n\r\nCarol\r\n",
		"<html><body><p>Hi all,</p><p>notes from today's kickoff:</p><ul><li>scope <b>agreed</b></li><li>first milestone in <i>July</i></li></ul><p>Carol</p></body></html>\r\n",
		"kickoff-alt"))

	// 5. Attachment (PDF), forwarded.
	d = time.Date(2021, 9, 30, 18, 5, 0, 0, zNewYork)
	add("INBOX", 5*time.Second, d, []imap.Flag{imap.FlagSeen, flagForwarded, flagWork}, mixed(
		hdr("Billing <billing@vendor.example>", me, "Invoice 2021-117", d, "inv-2021-117@vendor.example"),
		"Dear customer,\r\n\r\nplease find attached invoice 2021-117.\r\n\r\nKind regards\r\nVendor Billing\r\n",
		"invoice-mixed",
		attachment{name: "invoice-2021-117.pdf", typ: "application/pdf", data: fakePDF("Invoice 2021-117")}))

	// 6. German, RFC 2047 Q subject, ISO-8859-1 quoted-printable body.
	d = time.Date(2022, 1, 10, 8, 12, 0, 0, zBerlin)
	add("INBOX", 7*time.Second, d, nil, singlePart(
		hdrEnc(q("iso-8859-1", "Jürgen Müller")+" <juergen@mueller.example>", me, q("iso-8859-1", "Grüße aus Köln - Änderung der Öffnungszeiten"), d, "koeln-1@mueller.example"),
		"text/plain; charset=iso-8859-1", "quoted-printable", qp(latin1(
			"Liebe Alice,\r\n\r\nab nächster Woche öffnet unser Büro erst um 9 Uhr.\r\nBitte beachte die geänderten Öffnungszeiten.\r\n\r\nHerzliche Grüße aus Köln\r\nJürgen\r\n"))))

	// 7. German, UTF-8 8bit body.
	d = time.Date(2022, 3, 27, 10, 0, 0, 0, zBerlinS)
	add("INBOX", 2*time.Second, d, seen, singlePart(
		hdrEnc(q("utf-8", "Jürgen Müller")+" <juergen@mueller.example>", me, q("utf-8", "Besprechung über die Straßenbaupläne"), d, "koeln-2@mueller.example"),
		"text/plain; charset=utf-8", "8bit", []byte(
			"Hallo Alice,\r\n\r\ndie Besprechung über die Straßenbaupläne ist am Dienstag um 14 Uhr im großen Saal.\r\n\r\nGruß\r\nJürgen\r\n")))

	// 8. Romanian, B subject, UTF-8 quoted-printable body.
	d = time.Date(2022, 5, 12, 16, 20, 0, 0, zBucurest)
	add("INBOX", 9*time.Second, d, []imap.Flag{imap.FlagSeen, flagPersonal}, singlePart(
		hdrEnc(b("utf-8", "Ion Popescu")+" <ion.popescu@firma.example>", me, b("utf-8", "Întâlnire și ședință mâine la ora zece"), d, "ro-1@firma.example"),
		"text/plain; charset=utf-8", "quoted-printable", qp([]byte(
			"Bună ziua,\r\n\r\nvă reamintesc că mâine la ora zece avem ședința despre bugetul pe anul viitor.\r\nVă rog să aduceți și raportul trimestrial.\r\n\r\nCu stimă,\r\nIon Popescu\r\n"))))

	// 9. Russian, KOI8-R subject and 8bit KOI8-R body.
	d = time.Date(2022, 8, 3, 11, 11, 11, 0, zMoscow)
	add("INBOX", 6*time.Second, d, seen, singlePart(
		hdrEnc(b("koi8-r", "Сергей Иванов")+" <sergey@ivanov.example>", me, b("koi8-r", "Отчёт за квартал"), d, "ru-1@ivanov.example"),
		"text/plain; charset=koi8-r", "8bit", koi8r(
			"Добрый день, Алиса!\r\n\r\nВысылаю отчёт за третий квартал. Все цифры проверены.\r\nЕсли будут вопросы, звоните.\r\n\r\nС уважением,\r\nСергей\r\n")))

	// 10. Russian, UTF-8 base64 body.
	d = time.Date(2022, 12, 30, 23, 59, 0, 0, zMoscow)
	add("INBOX", 1*time.Second, d, []imap.Flag{imap.FlagSeen, imap.FlagAnswered}, singlePart(
		hdrEnc(b("utf-8", "Сергей Иванов")+" <sergey@ivanov.example>", me, b("utf-8", "С Новым годом!"), d, "ru-2@ivanov.example"),
		"text/plain; charset=utf-8", "base64", b64([]byte(
			"Алиса, поздравляю тебя с Новым годом!\r\nЖелаю здоровья, счастья и успехов во всём.\r\n\r\nСергей\r\n"))))

	// 11. Greek, UTF-8 8bit body.
	d = time.Date(2023, 4, 16, 7, 30, 0, 0, zAthens)
	add("INBOX", 3*time.Second, d, nil, singlePart(
		hdrEnc(b("utf-8", "Νίκος Παπαδόπουλος")+" <nikos@papadopoulos.example>", me, b("utf-8", "Καλό Πάσχα από την Αθήνα"), d, "el-1@papadopoulos.example"),
		"text/plain; charset=utf-8", "8bit", []byte(
			"Γεια σου Αλίκη,\r\n\r\nσου εύχομαι Καλό Πάσχα και Χριστός Ανέστη!\r\nΤα λέμε σύντομα στην Αθήνα.\r\n\r\nΝίκος\r\n")))

	// 12. Japanese, ISO-2022-JP subject and 7bit ISO-2022-JP body.
	d = time.Date(2023, 7, 7, 10, 0, 0, 0, zTokyo)
	add("INBOX", 12*time.Second, d, []imap.Flag{imap.FlagSeen, flagWork}, singlePart(
		// "山田 太郎" / "会議資料の送付について"
		hdrEnc("=?ISO-2022-JP?B?GyRCOzNFRBsoQiAbJEJCQE86GyhC?= <yamada@kaisha.example>", me,
			"=?ISO-2022-JP?B?GyRCMnE1RDtxTkEkTkF3SVUkSyREJCQkRhsoQg==?=", d, "ja-1@kaisha.example"),
		"text/plain; charset=ISO-2022-JP", "7bit", []byte(
			// 山田です。 / 来週の会議の資料をお送りします。 /
			// ご確認のほど、よろしくお願いいたします。 / 山田 太郎
			"\x1b$B;3ED$G$9!#\x1b(B\r\n\r\n\x1b$BMh=5$N2q5D$N;qNA$r$*Aw$j$7$^$9!#\x1b(B\r\n"+
				"\x1b$B$43NG'$N$[$I!\"$h$m$7$/$*4j$$$$$?$7$^$9!#\x1b(B\r\n\r\n\x1b$B;3ED\x1b(B \x1b$BB@O:\x1b(B\r\n")))

	// 13. Japanese, UTF-8 base64, MDN sent.
	d = time.Date(2023, 7, 8, 9, 0, 0, 0, zTokyo)
	add("INBOX", 2*time.Second, d, []imap.Flag{imap.FlagSeen, flagMDNSent}, singlePart(
		hdrEnc(b("utf-8", "山田 太郎")+" <yamada@kaisha.example>", me, b("utf-8", "Re: 会議資料の送付について"), d, "ja-2@kaisha.example",
			"In-Reply-To", "<ja-1@kaisha.example>", "Disposition-Notification-To", "yamada@kaisha.example"),
		"text/plain; charset=utf-8", "base64", b64([]byte(
			"アリスさん\r\n\r\n資料を受け取りました。ありがとうございます。\r\n来週の会議でお会いしましょう。\r\n\r\n山田\r\n"))))

	// 14. Chinese, UTF-8 base64, multipart/alternative.
	d = time.Date(2023, 9, 29, 20, 8, 0, 0, zShanghai)
	add("INBOX", 4*time.Second, d, seen, alternativeB64(
		hdrEnc(b("utf-8", "王小明")+" <wang@gongsi.example>", me, b("utf-8", "中秋节快乐！"), d, "zh-1@gongsi.example"),
		"爱丽丝，你好！\r\n\r\n祝你中秋节快乐，阖家团圆！\r\n月饼已经寄出，请注意查收。\r\n\r\n王小明\r\n",
		"<html><body><p>爱丽丝，你好！</p><p>祝你<b>中秋节快乐</b>，阖家团圆！</p><p>月饼已经寄出，请注意查收。</p><p>王小明</p></body></html>\r\n",
		"zh-alt"))

	// 15. Forwarded message as message/rfc822 attachment.
	d = time.Date(2024, 1, 15, 13, 0, 0, 0, zIndia)
	inner := textMail(hdr("Ravi Kumar <ravi@tech.example>", "Bob Builder <bob@"+domain+">", "Server maintenance window", d.Add(-2*time.Hour), "maint-1@tech.example"),
		"Hi Bob,\r\n\r\nthe maintenance window is Saturday 02:00-04:00 IST.\r\n\r\nRavi\r\n")
	add("INBOX", 8*time.Second, d, []imap.Flag{imap.FlagSeen, flagForwarded}, mixed(
		hdr(bob, me, "Fwd: Server maintenance window", d, id("fwd-maint")),
		"FYI, see the forwarded message below.\r\n\r\nBob\r\n",
		"fwd-mixed",
		attachment{name: "", typ: "message/rfc822", data: inner}))

	// 16. Mailing list message.
	d = time.Date(2024, 4, 2, 15, 45, 0, 0, zNepal)
	add("INBOX", 30*time.Second, d, nil, textMail(
		hdr("Priya Shrestha <priya@himal.example>", "hiking@lists.himal.example", "[hiking] Trek to Annapoorna base camp", d, "trek-1@himal.example",
			"List-Id", "Himalaya hiking <hiking.lists.himal.example>",
			"List-Unsubscribe", "<mailto:hiking-unsubscribe@lists.himal.example>",
			"Precedence", "list"),
		"Namaste everyone,\r\n\r\nwho joins the trek in October? We start from Pokhara.\r\n\r\nPriya\r\n"))

	// 17. HTML with an inline image (multipart/related).
	d = time.Date(2024, 6, 21, 12, 0, 0, 0, time.UTC)
	add("INBOX", 1*time.Second, d, seen, related(
		hdr(carol, me, "Photo from the summer party", d, id("party-photo")),
		"<html><body><p>Look at this!</p><img src=\"cid:"+id("sun")+"\" alt=\"sun\"></body></html>\r\n",
		id("sun"), tinyPNG(), "party-related"))

	// 18. Large attachment (~256 KiB), to exercise literal streaming.
	d = time.Date(2025, 2, 3, 8, 0, 0, 0, zBerlin)
	add("INBOX", 20*time.Second, d, []imap.Flag{imap.FlagSeen, flagWork}, mixed(
		hdr(carol, me, "Measurement data (large attachment)", d, id("big-data")),
		"Hi Alice,\r\n\r\nattached are the raw measurements.\r\n\r\nCarol\r\n",
		"big-mixed",
		attachment{name: "measurements.bin", typ: "application/octet-stream", data: pseudoRandom(256 << 10)}))

	// 19. No Subject at all, empty body.
	d = time.Date(2025, 5, 5, 5, 5, 5, 0, zLA)
	add("INBOX", 5*time.Second, d, nil, []byte(
		"From: "+bob+"\r\nTo: "+me+"\r\nDate: "+d.Format(time.RFC1123Z)+"\r\nMessage-ID: <"+id("no-subject")+">\r\n\r\n"))

	// 20. Marked \Deleted but not expunged.
	d = time.Date(2025, 8, 8, 18, 0, 0, 0, zBerlinS)
	add("INBOX", 3*time.Second, d, []imap.Flag{imap.FlagSeen, imap.FlagDeleted}, textMail(
		hdr("Shop <noreply@shop.example>", me, "Your order has shipped", d, "ship-991@shop.example"),
		"Your order 991 has shipped and will arrive in 2-3 days.\r\n"))

	// 21. Recent, unseen, flagged; very long folded header and non-ASCII display name.
	d = time.Date(2026, 1, 2, 9, 0, 0, 0, zBerlin)
	add("INBOX", 2*time.Second, d, []imap.Flag{imap.FlagFlagged}, singlePart(
		hdrEnc(q("utf-8", "Zoë Ångström")+" <zoe@nordic.example>", me,
			"A rather long subject line about the new year plans, which definitely needs folding across several lines because it is longer than seventy-eight characters",
			d, "longsubj@nordic.example"),
		"text/plain; charset=utf-8", "quoted-printable", qp([]byte("Happy new year, Alice!\r\n\r\nZoë\r\n"))))

	// Sent.
	d = time.Date(2019, 11, 4, 13, 1, 0, 0, zBerlin)
	add("Sent", 0, d, seen, textMail(
		hdr(me, bob, "Re: Lunch on Friday?", d, id("lunch-2"), "In-Reply-To", "<"+id("lunch-1")+">", "References", "<"+id("lunch-1")+">"),
		"12:30 is fine, see you there.\r\n\r\nAlice\r\n\r\n> shall we have lunch on Friday at the Italian place?\r\n"))
	d = time.Date(2021, 9, 30, 19, 0, 0, 0, zBerlinS)
	add("Sent", 0, d, seen, textMail(
		hdr(me, "Accounting <accounting@"+domain+">", "Fwd: Invoice 2021-117", d, id("fwd-invoice")),
		"Please pay this one.\r\n\r\nAlice\r\n"))
	d = time.Date(2022, 5, 12, 18, 0, 0, 0, zBucurest)
	add("Sent", 0, d, seen, singlePart(
		hdrEnc(me, b("utf-8", "Ion Popescu")+" <ion.popescu@firma.example>", b("utf-8", "Re: Întâlnire și ședință mâine la ora zece"), d, id("ro-re")),
		"text/plain; charset=utf-8", "quoted-printable", qp([]byte("Mulțumesc, voi fi acolo.\r\n\r\nAlice\r\n"))))

	// Drafts.
	d = time.Date(2025, 11, 20, 22, 10, 0, 0, zBerlin)
	add("Drafts", 0, d, []imap.Flag{imap.FlagSeen, imap.FlagDraft}, textMail(
		hdr(me, carol, "Ideas for the next offsite", d, id("draft-1")),
		"Carol,\r\n\r\nsome ideas:\r\n- a lake\r\n- \r\n"))
	d = time.Date(2026, 2, 1, 7, 0, 0, 0, zBerlin)
	add("Drafts", 0, d, []imap.Flag{imap.FlagDraft}, []byte(
		"From: "+me+"\r\nSubject: (unfinished)\r\nDate: "+d.Format(time.RFC1123Z)+"\r\nMessage-ID: <"+id("draft-2")+">\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTo do: write to the landlord\r\n"))

	// Trash.
	d = time.Date(2023, 3, 3, 3, 3, 3, 0, zNewYork)
	add("Trash", 0, d, seen, textMail(hdr("Spammy <win@lottery.example>", me, "You won!!!", d, "win@lottery.example"),
		"Click here to claim your prize.\r\n"))
	d = time.Date(2024, 10, 10, 10, 10, 10, 0, zBerlinS)
	add("Trash", 0, d, []imap.Flag{imap.FlagSeen, imap.FlagDeleted}, textMail(hdr(bob, me, "old draft of the plan", d, id("old-plan")),
		"Ignore this.\r\n"))

	// Archive and Archive/2020.
	d = time.Date(2018, 7, 14, 20, 0, 0, 0, zBerlinS)
	add("Archive", 0, d, seen, textMail(hdr(carol, me, "Concert tickets", d, id("concert")), "Tickets for Saturday are in my bag.\r\n"))
	d = time.Date(2019, 1, 1, 0, 0, 1, 0, time.UTC)
	add("Archive", 0, d, []imap.Flag{imap.FlagSeen, imap.FlagFlagged}, textMail(hdr(bob, me, "Happy 2019", d, id("ny2019")), "Happy new year!\r\n"))
	for i, subj := range []string{"Q1 report", "Q2 report", "Home office rules"} {
		d = time.Date(2020, time.Month(3*i+3), 15, 10, 0, 0, 0, zBerlin)
		add("Archive/2020", time.Duration(i)*time.Second, d, []imap.Flag{imap.FlagSeen, flagWork}, textMail(
			hdr(carol, me, subj, d, id(fmt.Sprintf("arch2020-%d", i))), subj+" attached in the wiki.\r\n"))
	}

	// Données/Été 2020 (French).
	d = time.Date(2020, 7, 14, 11, 0, 0, 0, zBerlinS)
	add("Données/Été 2020", 0, d, seen, singlePart(
		hdrEnc(q("utf-8", "Hélène Lefèvre")+" <helene@lefevre.example>", me, q("utf-8", "Vacances d'été à Annecy"), d, "fr-1@lefevre.example"),
		"text/plain; charset=utf-8", "quoted-printable", qp([]byte(
			"Chère Alice,\r\n\r\nnous serons à Annecy du 20 au 27 juillet. Tu es la bienvenue !\r\n\r\nÀ bientôt,\r\nHélène\r\n"))))
	d = time.Date(2020, 8, 2, 19, 30, 0, 0, zBerlinS)
	add("Données/Été 2020", 0, d, []imap.Flag{imap.FlagSeen, flagPersonal}, singlePart(
		hdrEnc(q("utf-8", "Hélène Lefèvre")+" <helene@lefevre.example>", me, q("utf-8", "Photos du lac"), d, "fr-2@lefevre.example"),
		"text/plain; charset=utf-8", "8bit", []byte("Voici les photos du lac, prises le dernier jour. Quel été !\r\n")))

	// Newsletters (unsubscribed folder).
	for i := 0; i < 2; i++ {
		d = time.Date(2023, time.Month(i+1), 1, 6, 0, 0, 0, zLA)
		add("Newsletters", 0, d, seen, textMail(
			hdr("Cloud Weekly <digest@news.example>", me, fmt.Sprintf("Monthly news #%d", i+1), d, fmt.Sprintf("monthly-%d@news.example", i+1)),
			"This month: nothing special.\r\n"))
	}
	return folders, m
}

// hdr returns header lines for ASCII From/To/Subject plus extra key/value
// pairs, in the order a typical client writes them.
func hdr(from, to, subject string, date time.Time, msgID string, extra ...string) []string {
	return hdrEnc(from, to, subject, date, msgID, extra...)
}

// hdrEnc is hdr for already RFC 2047 encoded fields.
func hdrEnc(from, to, subject string, date time.Time, msgID string, extra ...string) []string {
	h := []string{
		"Date: " + date.Format(time.RFC1123Z),
		"From: " + from,
		"To: " + to,
		"Subject: " + subject,
		"Message-ID: <" + msgID + ">",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h = append(h, extra[i]+": "+extra[i+1])
	}
	return append(h, "MIME-Version: 1.0")
}

// fold folds one header field at spaces so lines stay under 78 characters
// (RFC 5322 section 2.2.3).
func fold(field string) string {
	var b strings.Builder
	for len(field) > 76 {
		i := strings.LastIndexByte(field[:76], ' ')
		if i <= 0 {
			// The first word is too long: break after it instead.
			j := strings.IndexByte(field[1:], ' ')
			if j < 0 {
				break
			}
			i = j + 1
		}
		b.WriteString(field[:i])
		b.WriteString("\r\n")
		field = field[i:]
	}
	b.WriteString(field)
	return b.String()
}

func writeHeader(buf *bytes.Buffer, h []string) {
	for _, f := range h {
		buf.WriteString(fold(f))
		buf.WriteString("\r\n")
	}
}

// textMail is a plain US-ASCII text message.
func textMail(h []string, body string) []byte {
	return singlePart(h, "text/plain; charset=us-ascii", "7bit", []byte(body))
}

// singlePart is a single-part message with the given, already encoded body.
func singlePart(h []string, contentType, cte string, body []byte) []byte {
	var buf bytes.Buffer
	writeHeader(&buf, append(h, "Content-Type: "+contentType, "Content-Transfer-Encoding: "+cte))
	buf.WriteString("\r\n")
	buf.Write(body)
	return buf.Bytes()
}

// alternative is multipart/alternative with UTF-8 quoted-printable parts.
func alternative(h []string, text, html, boundary string) []byte {
	return multipart(h, "alternative", boundary, []part{
		{header: []string{"Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"}, body: qp([]byte(text))},
		{header: []string{"Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"}, body: qp([]byte(html))},
	})
}

// alternativeB64 is multipart/alternative with UTF-8 base64 parts.
func alternativeB64(h []string, text, html, boundary string) []byte {
	return multipart(h, "alternative", boundary, []part{
		{header: []string{"Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"}, body: b64([]byte(text))},
		{header: []string{"Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: base64"}, body: b64([]byte(html))},
	})
}

type attachment struct {
	name, typ string
	data      []byte
}

// mixed is multipart/mixed: a text part and one attachment. A message/rfc822
// attachment is embedded as is (RFC 2046 section 5.2.1 forbids encoding it).
func mixed(h []string, text, boundary string, att attachment) []byte {
	ph := []string{"Content-Type: " + att.typ}
	body := att.data
	if att.typ == "message/rfc822" {
		ph = append(ph, "Content-Disposition: inline")
	} else {
		ph[0] += "; name=\"" + att.name + "\""
		ph = append(ph, "Content-Disposition: attachment; filename=\""+att.name+"\"", "Content-Transfer-Encoding: base64")
		body = b64(att.data)
	}
	return multipart(h, "mixed", boundary, []part{
		{header: []string{"Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"}, body: []byte(text)},
		{header: ph, body: body},
	})
}

// related is multipart/related: an HTML part and an inline PNG (RFC 2387).
func related(h []string, html, cid string, img []byte, boundary string) []byte {
	return multipart(h, "related", boundary, []part{
		{header: []string{"Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"}, body: qp([]byte(html))},
		{header: []string{"Content-Type: image/png; name=\"sun.png\"", "Content-Transfer-Encoding: base64", "Content-ID: <" + cid + ">", "Content-Disposition: inline; filename=\"sun.png\""}, body: b64(img)},
	})
}

type part struct {
	header []string
	body   []byte
}

func multipart(h []string, subtype, boundary string, parts []part) []byte {
	boundary = "----=_Part_" + boundary
	var buf bytes.Buffer
	ct := "Content-Type: multipart/" + subtype + "; boundary=\"" + boundary + "\""
	if subtype == "related" {
		ct += "; type=\"text/html\""
	}
	writeHeader(&buf, append(h, ct))
	buf.WriteString("\r\nThis is a multi-part message in MIME format.\r\n")
	for _, p := range parts {
		buf.WriteString("\r\n--" + boundary + "\r\n")
		writeHeader(&buf, p.header)
		buf.WriteString("\r\n")
		buf.Write(bytes.TrimRight(p.body, "\r\n"))
	}
	buf.WriteString("\r\n--" + boundary + "--\r\n")
	return buf.Bytes()
}

// q and b are RFC 2047 encoded-words in the given charset; s is UTF-8 and is
// converted for iso-8859-1 and koi8-r.
func q(charset, s string) string {
	return mime.QEncoding.Encode(charset, string(toCharset(charset, s)))
}
func b(charset, s string) string {
	return mime.BEncoding.Encode(charset, string(toCharset(charset, s)))
}

func toCharset(charset, s string) []byte {
	switch strings.ToLower(charset) {
	case "iso-8859-1":
		return latin1(s)
	case "koi8-r":
		return koi8r(s)
	}
	return []byte(s)
}

// qp is quoted-printable (RFC 2045 section 6.7) with CRLF line breaks.
func qp(data []byte) []byte {
	var buf bytes.Buffer
	w := quotedprintable.NewWriter(&buf)
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

// b64 is base64 in lines of 76 characters (RFC 2045 section 6.8).
func b64(data []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var buf bytes.Buffer
	for len(enc) > 76 {
		buf.WriteString(enc[:76])
		buf.WriteString("\r\n")
		enc = enc[76:]
	}
	buf.WriteString(enc)
	buf.WriteString("\r\n")
	return buf.Bytes()
}

// latin1 encodes s as ISO-8859-1; it panics on characters outside it, which
// only a bug in the seed text can cause.
func latin1(s string) []byte { return encode(charmap.ISO8859_1, "ISO-8859-1", s) }

// koi8r encodes s as KOI8-R (RFC 1489); it panics on characters outside it.
func koi8r(s string) []byte { return encode(charmap.KOI8R, "KOI8-R", s) }

func encode(cm *charmap.Charmap, name, s string) []byte {
	out, err := cm.NewEncoder().Bytes([]byte(s))
	if err != nil {
		panic(fmt.Sprintf("demo: %q is not in %s: %v", s, name, err))
	}
	return out
}

// fakePDF is a small, syntactically plausible PDF document.
func fakePDF(title string) []byte {
	return []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
		"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n" +
		"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n" +
		"4 0 obj << /Title (" + title + ") >> endobj\n" +
		"trailer << /Root 1 0 R /Info 4 0 R >>\n%%EOF\n")
}

// tinyPNG is a deterministic 16×16 PNG of a yellow sun on blue.
func tinyPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 16; x++ {
			c := color.RGBA{0x40, 0x80, 0xE0, 0xFF}
			if (x-8)*(x-8)+(y-8)*(y-8) < 20 {
				c = color.RGBA{0xFF, 0xD0, 0x20, 0xFF}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// pseudoRandom returns n deterministic pseudo-random bytes.
func pseudoRandom(n int) []byte {
	r := rand.New(rand.NewPCG(2026, 11))
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(r.Uint32())
	}
	return out
}
