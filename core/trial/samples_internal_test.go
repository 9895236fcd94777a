package trial

import (
	"reflect"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/demo"
	"mailferry/core/oldserver/oldtest/quirky"
)

// A server that splits a message's FETCH items over several responses
// (the body's, then FLAGS and INTERNALDATE) gives the same sample copy as
// one that sends them together.
func TestFetchSampleSplitItems(t *testing.T) {
	msg := []byte("Message-ID: <sample-1@example.test>\r\nSubject: plain\r\n\r\nHello\r\n")
	other := []byte("Message-ID: <other@example.test>\r\nSubject: other\r\n\r\nBye\r\n")
	sm := demo.Sample{Name: "plain", MessageID: "sample-1@example.test"}
	fetch := func(q quirky.Quirks) *SampleCopy {
		t.Helper()
		srv := quirky.Start(t, "alice", "secret", q, []quirky.Folder{{Name: "INBOX", Messages: [][]byte{other, msg}}})
		cl, err := imapclient.DialInsecure(srv.Addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.Login(srv.User, srv.Password).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		c, err := fetchSample(cl, sm)
		if err != nil {
			t.Fatalf("quirks %+v: %v", q, err)
		}
		if c == nil {
			t.Fatalf("quirks %+v: sample not found", q)
		}
		return c
	}
	plain := fetch(quirky.Quirks{})
	split := fetch(quirky.Quirks{SplitItems: true})
	if string(split.Raw) != string(msg) {
		t.Fatalf("split: bytes %q, want %q", split.Raw, msg)
	}
	if !reflect.DeepEqual(plain, split) {
		t.Fatalf("split items give %+v, together %+v", split, plain)
	}
	if split.InternalDate.IsZero() {
		t.Fatal("split: no INTERNALDATE")
	}
}
