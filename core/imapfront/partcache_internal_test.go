package imapfront

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// partCacheMessages are messages whose sections TestPartCacheSameBytes
// reads: multiparts in multiparts, a digest, encapsulated messages,
// LF-only lines, a part without a header, a message without a body.
var partCacheMessages = []string{
	"From: a@example.test\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: in@example.test\n\ninner body\r\n--b1--\r\nepilogue\r\n",
	"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/alternative; boundary=z\r\n\r\n--z\r\n\r\nA\r\n--z\r\nContent-Type: text/html\r\n\r\n<b>B</b>\r\n--z--\r\n",
	"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: d1\r\n\r\nbody 1\r\n--d\r\nContent-Type: text/plain\r\n\r\nplain\r\n--d\r\n\r\nSubject: d3\r\nContent-Type: multipart/mixed; boundary=e\r\n\r\n--e\r\n\r\nE1\r\n--e\r\nX: y\r\n\r\nE2\r\n--e--\r\n--d--\r\n",
	"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: multipart/related; boundary=y\n\n--y\n\nY1\n--y\nContent-Type: message/global\n\nSubject: g\n\ng body\n--y--\n--x\nno header line at all\n--x--\n",
	"Subject: only a header\r\nContent-Type: multipart/mixed; boundary=q\r\n",
	"Content-Type: multipart/mixed; boundary=u\r\n\r\n--u\r\n\r\nunterminated",
}

// TestPartCacheSameBytes (review1): every section of these messages read
// with one partCache for all, in any order and more than once, is the
// same bytes as read alone (extractSection, binarySection without it).
func TestPartCacheSameBytes(t *testing.T) {
	specs := []imap.PartSpecifier{imap.PartSpecifierNone, imap.PartSpecifierHeader, imap.PartSpecifierText, imap.PartSpecifierMIME}
	var paths [][]int
	var walk func(p []int)
	walk = func(p []int) {
		paths = append(paths, p)
		if len(p) == 4 {
			return
		}
		for n := 1; n <= 4; n++ {
			walk(append(append([]int{}, p...), n))
		}
	}
	walk(nil)
	rnd := rand.New(rand.NewSource(1))
	for i, m := range partCacheMessages {
		raw := []byte(m)
		type item struct {
			sec    *imap.FetchItemBodySection
			binary bool
		}
		var items []item
		for _, p := range paths {
			for _, sp := range specs {
				items = append(items, item{sec: &imap.FetchItemBodySection{Part: p, Specifier: sp, Peek: true}})
			}
			items = append(items, item{sec: &imap.FetchItemBodySection{Part: p, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}},
				item{sec: &imap.FetchItemBodySection{Part: p, Partial: &imap.SectionPartial{Offset: 2, Size: 5}}},
				item{sec: &imap.FetchItemBodySection{Part: p}, binary: true})
		}
		pc := &partCache{}
		for round := range 2 {
			rnd.Shuffle(len(items), func(a, b int) { items[a], items[b] = items[b], items[a] })
			for _, it := range items {
				name := fmt.Sprintf("message %d round %d part %v spec %q fields %v binary %v", i, round, it.sec.Part, it.sec.Specifier, it.sec.HeaderFields, it.binary)
				if it.binary {
					bs := &imap.FetchItemBinarySection{Part: it.sec.Part}
					if got, want := binarySection(raw, bs, pc), binarySection(raw, bs, nil); !bytes.Equal(got, want) {
						t.Fatalf("%s: %q with the cache, %q without", name, got, want)
					}
					continue
				}
				got, gotOK := extractSectionIn(raw, it.sec, pc)
				want, wantOK := extractSection(raw, it.sec)
				if gotOK != wantOK || !bytes.Equal(got, want) {
					t.Fatalf("%s: %q %v with the cache, %q %v without", name, got, gotOK, want, wantOK)
				}
			}
		}
	}
}
