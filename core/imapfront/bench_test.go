package imapfront_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailferry/core/store"
)

var (
	benchNames    = []string{"Alice Martin", "Bob Dupont", "Chloé Bernard", "David Smith", "Émilie Durand", "Frank Müller", "Grace Hopper", "Hiro Tanaka", "", "Ivan Petrov"}
	benchDomains  = []string{"example.test", "mail.example.org", "corp.example.net", "lists.example.com"}
	benchSubjects = []string{"Re: Quarterly report", "Meeting tomorrow at 10", "=?utf-8?q?R=C3=A9union_d=27=C3=A9quipe?=", "Invoice #%d", "Fwd: photos from the trip", "[list] Weekly digest %d", "Your order has shipped", "Lunch?", "Build failed on main (#%d)", "Re: Re: Re: the long thread"}
)

// realisticMessage makes the i-th of a varied set of messages: plain, 8-bit,
// multipart/alternative and with an attachment.
func realisticMessage(r *rand.Rand, i int) string {
	name := benchNames[r.Intn(len(benchNames))]
	local := strings.ToLower(strings.Fields(name + " user")[0])
	from := fmt.Sprintf("%s@%s", local, benchDomains[r.Intn(len(benchDomains))])
	if name != "" {
		from = fmt.Sprintf("%q <%s>", name, from)
	}
	subj := benchSubjects[r.Intn(len(benchSubjects))]
	if strings.Contains(subj, "%d") {
		subj = fmt.Sprintf(subj, i)
	}
	date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 37 * time.Minute).Format(time.RFC1123Z)
	h := fmt.Sprintf("Return-Path: <%s@%s>\r\nReceived: from mx.example.test (mx.example.test [192.0.2.%d]) by mail.example.test with ESMTPS id %x; %s\r\nFrom: %s\r\nTo: alice@example.test\r\nCc: team@example.test, \"Bob\" <bob@example.test>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%x@example.test>\r\nIn-Reply-To: <%d@example.test>\r\nMIME-Version: 1.0\r\n",
		local, benchDomains[0], i%250, r.Int63(), date, from, subj, date, i, r.Int63(), i-1)
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 2+r.Intn(20))
	switch i % 4 {
	case 0:
		return h + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body + "\r\n"
	case 1:
		return h + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBonjour, voilà le résumé : " + body + "\r\n"
	case 2:
		return h + "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain\r\n\r\n" + body +
			"\r\n--alt\r\nContent-Type: text/html\r\n\r\n<p>" + body + "</p>\r\n--alt--\r\n"
	default:
		att := make([]byte, 2000+r.Intn(8000))
		r.Read(att)
		return h + "Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: text/plain\r\n\r\n" + body +
			"\r\n--mix\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString(att) + "\r\n--mix--\r\n"
	}
}

// fill appends n messages to a mailbox in batches, as the migration engine
// does.
func fill(tb testing.TB, st *store.Store, mb *store.Mailbox, n int) {
	tb.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewSource(1))
	for i := 0; i < n; {
		tx, err := st.Begin(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		for j := 0; j < 500 && i < n; j, i = j+1, i+1 {
			flags := []string{}
			if i%3 != 0 {
				flags = append(flags, `\Seen`)
			}
			if i%17 == 0 {
				flags = append(flags, `\Flagged`, "$Label1")
			}
			if _, err := tx.Append(mb.ID, &store.NewMessage{Body: []byte(realisticMessage(r, i)), Flags: flags,
				InternalDate: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)}); err != nil {
				tx.Rollback()
				tb.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

var benchLiteral = regexp.MustCompile(`\{(\d+)\+?\}\r\n$`)

// countUntil reads responses up to the tagged line, skipping literals, and
// counts the untagged FETCH responses.
func countUntil(tb testing.TB, r *bufio.Reader, tag string) int {
	n := 0
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			tb.Fatal(err)
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				tb.Fatal(l)
			}
			return n
		}
		if strings.HasPrefix(l, "* ") && strings.Contains(l, " FETCH (") {
			n++
		}
		for strings.HasSuffix(l, "}\r\n") {
			m := benchLiteral.FindStringSubmatch(l)
			if m == nil {
				break
			}
			k, _ := strconv.Atoi(m[1])
			if _, err := io.CopyN(io.Discard, r, int64(k)); err != nil {
				tb.Fatal(err)
			}
			if l, err = r.ReadString('\n'); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// selectedInbox fills INBOX with n messages and returns a connection
// logged in with INBOX selected, and its reader; the connection closes
// when the benchmark ends.
func selectedInbox(b *testing.B, n int) (net.Conn, *bufio.Reader) {
	e := newEnv(b, nil)
	fill(b, e.st, e.inbox(), n)
	return inboxSession(b, e.addr)
}

// inboxSession is a connection to addr logged in with INBOX selected,
// closed when the benchmark ends.
func inboxSession(b *testing.B, addr string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	r := bufio.NewReaderSize(c, 64<<10)
	fmt.Fprintf(c, "a LOGIN %s %s\r\nb SELECT INBOX\r\n", user, pass)
	countUntil(b, r, "a")
	countUntil(b, r, "b")
	return c, r
}

// BenchmarkFetchEnvelope20k measures FETCH 1:* (FLAGS ENVELOPE) over a real
// connection on a 20,000-message mailbox. ENVELOPE comes from the store's
// cache; no message is parsed.
func BenchmarkFetchEnvelope20k(b *testing.B) {
	const n = 20000
	c, r := selectedInbox(b, n)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		tag := fmt.Sprintf("f%d", i)
		fmt.Fprintf(c, "%s FETCH 1:* (FLAGS ENVELOPE)\r\n", tag)
		if got := countUntil(b, r, tag); got != n {
			b.Fatalf("%d FETCH responses, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkAppend measures APPEND of a 4 KiB message (LITERAL+) over a real
// connection, each in its own store transaction.
func BenchmarkAppend(b *testing.B) {
	e := newEnv(b, nil)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "a LOGIN %s %s\r\n", user, pass)
	countUntil(b, r, "a")
	rnd := rand.New(rand.NewSource(2))
	msgs := make([]string, 64)
	for i := range msgs {
		m := realisticMessage(rnd, i*4+1) // 8-bit text/plain
		m += strings.Repeat("x", max(0, 4096-len(m)-2)) + "\r\n"
		msgs[i] = m
	}
	b.SetBytes(int64(len(msgs[0])))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		tag := fmt.Sprintf("p%d", i)
		fmt.Fprintf(c, "%s APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n", tag, len(m), m)
		countUntil(b, r, tag)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkFetch10 measures one session's FETCH n:n+9 (UID FLAGS
// RFC822.SIZE ENVELOPE BODY.PEEK[]) over a real connection on a
// 2,000-message mailbox with no other client: the command of
// BenchmarkLatency10Clients without its load, for its CPU and
// allocations per FETCH (-benchmem) and syscalls (strace -c).
func BenchmarkFetch10(b *testing.B) {
	const n = 2000
	c, r := selectedInbox(b, n)
	rnd := rand.New(rand.NewSource(4))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tag := fmt.Sprintf("f%d", i)
		first := 1 + rnd.Intn(n-10)
		fmt.Fprintf(c, "%s FETCH %d:%d (UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[])\r\n", tag, first, first+9)
		if got := countUntil(b, r, tag); got != 10 {
			b.Fatalf("%d FETCH responses, want 10", got)
		}
	}
}

// BenchmarkStoreAlone is one session's STORE of a keyword (set and
// cleared by turns) over a real connection on a 2,000-message mailbox
// with no other client: the paced case of BenchmarkLatency10Clients,
// where a STORE finds the writer free, for its time, its CPU (client and
// server, getrusage: cpu-µs/op) and the store work a lone STORE does
// (-cpuprofile, -trace, strace -c).
func BenchmarkStoreAlone(b *testing.B) {
	const n = 2000
	c, r := selectedInbox(b, n)
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	defer func() {
		var after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	}()
	for i := 0; i < b.N; i++ {
		tag := fmt.Sprintf("s%d", i)
		op := "+"
		if i%2 == 1 {
			op = "-"
		}
		fmt.Fprintf(c, "%s STORE %d %sFLAGS ($Bench)\r\n", tag, 1+(i/2)%n, op)
		if got := countUntil(b, r, tag); got != 1 {
			b.Fatalf("%d FETCH responses, want 1", got)
		}
	}
}

// BenchmarkPollAfterExpunge is what the other sessions on a mailbox pay
// for one session's EXPUNGE: 10 sessions have a 2,000-message INBOX
// selected; each op, one expunges a message and the 9 others send a NOOP,
// whose poll drops it from their views. cpu-µs/op is the process's CPU
// (getrusage: server and clients) per op.
func BenchmarkPollAfterExpunge(b *testing.B) {
	const n, sessions = 2000, 10
	e := newEnv(b, nil)
	fill(b, e.st, e.inbox(), n)
	if b.N >= n {
		b.Fatalf("at most %d ops (-benchtime %dx)", n-1, n-1)
	}
	var cs []net.Conn
	var rs []*bufio.Reader
	for i := 0; i < sessions; i++ {
		c, r := inboxSession(b, e.addr)
		cs, rs = append(cs, c), append(rs, r)
	}
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(cs[0], "e%d UID STORE %d +FLAGS.SILENT (\\Deleted)\r\nx%d UID EXPUNGE %d\r\n", i, i+1, i, i+1)
		countUntil(b, rs[0], fmt.Sprintf("e%d", i))
		countUntil(b, rs[0], fmt.Sprintf("x%d", i))
		for k := 1; k < sessions; k++ {
			fmt.Fprintf(cs[k], "n%d NOOP\r\n", i)
			countUntil(b, rs[k], fmt.Sprintf("n%d", i))
		}
	}
	b.StopTimer()
	var after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}
